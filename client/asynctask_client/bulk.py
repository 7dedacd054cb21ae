"""``asynctask cancel -l SELECTOR`` and ``asynctask delete -l SELECTOR``: every matching task,
with ``--dry-run`` (what would be done, nothing done) and a confirmation on a terminal
(``--yes`` skips it; off a terminal nothing is asked, so scripts run as written).

The plan and the lines printed are pure functions of views and answers; the counts come
from :meth:`Client.cancel_many` / :meth:`Client.delete_many`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from asynctask_client import render
from asynctask_client.client import Client
from asynctask_worker.bulk import Action, BulkAnswer, BulkItem, acted, require_selector
from asynctask_worker.views import TaskView

#: The exit code when the confirmation was not given: nothing was done.
ABORTED = 1


def plan(action: Action, views: Sequence[TaskView]) -> BulkAnswer:
    """What the action would do to these tasks (a dry run): a cancel skips the tasks that
    have ended; whether a cancel was already requested shows only when it is done."""
    items = []
    for view in views:
        if action == "cancel" and view.done:
            items.append(
                BulkItem(
                    name=view.name,
                    outcome="skipped",
                    reason="AlreadyFinished",
                    message=f"the task has already ended ({view.phase.value})",
                )
            )
        else:
            items.append(acted(view.name, action))
    return BulkAnswer.of(action, items)


def lines(answer: BulkAnswer, *, dry_run: bool = False) -> list[str]:
    """One line per task, then the counts."""
    would = "would be " if dry_run else ""
    out = []
    for item in answer.items:
        text = f"asynctask/{item.name} {would}{item.outcome}"
        if item.reason:
            text += f": {item.reason}" + (f": {item.message}" if item.message else "")
        out.append(text)
    done = "cancelled" if answer.action == "cancel" else "deleted"
    summary = (
        f"{answer.matched} matched: {answer.changed} {would}{done}, {answer.skipped} "
        f"{would}skipped, {answer.failed} failed"
    )
    out.append(summary + (" (dry run: nothing done)" if dry_run else ""))
    return out


def confirmed(action: Action, count: int, selector: str, namespace: str, tty: TextIO) -> bool:
    """Ask on the terminal; only ``y`` or ``yes`` goes on."""
    print(
        f'{action} {count} task(s) matching "{selector}" in the namespace {namespace}? [y/N] ',
        end="",
        file=sys.stderr,
        flush=True,
    )
    return tty.readline().strip().lower() in ("y", "yes")


def run(args: argparse.Namespace, client: Client, action: Action) -> int:
    try:
        selector = require_selector(args.selector)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return render.USAGE
    if args.dry_run or (sys.stdin.isatty() and not args.yes):
        views = [task.view for task in client.list(label_selector=selector)]
        if args.dry_run:
            print_answer(args, plan(action, views), dry_run=True)
            return render.OK
        if not views:
            print(f'No tasks match "{selector}" in {client.namespace}.', file=sys.stderr)
            return render.OK
        if not confirmed(action, len(views), selector, client.namespace, sys.stdin):
            print("nothing done", file=sys.stderr)
            return ABORTED
    answer = client.cancel_many(selector) if action == "cancel" else client.delete_many(selector)
    print_answer(args, answer)
    return render.REFUSED if answer.failed else render.OK


def print_answer(args: argparse.Namespace, answer: BulkAnswer, *, dry_run: bool = False) -> None:
    if args.output:
        doc = {**answer.to_json(), "dryRun": dry_run}
        print(render.machine(doc, args.output))
    else:
        print("\n".join(lines(answer, dry_run=dry_run)))
