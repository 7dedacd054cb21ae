"""``asynctask`` (also ``kubectl asynctask``): submit, follow and inspect AsyncTasks.

The Kubernetes API is reached as kubectl does (``KUBECONFIG``, ``--context``, ``-n``), or
the gateway with ``--gateway URL`` and a token (``--token`` or ``ASYNCTASK_TOKEN``).
Exit codes (docs/clients.md): 0 Succeeded, 10 Failed, 11 Error, 12 Cancelled, 13 TimedOut,
5 not done (yet, or within ``--timeout``), 2 usage, 3 refused by the server, 4 unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asynctask_client import bulk, render, resource_cli, when
from asynctask_client.client import Client, Task
from asynctask_client.errors import (
    ApiError,
    ConfigError,
    ConnectionFailed,
    TaskDeleted,
    WaitTimeout,
)
from asynctask_client.live import follow
from asynctask_client.reading import cmd_get, cmd_resubmit, cmd_result, read_arguments, show
from asynctask_worker._entrypoint import version_line

EPILOG = """exit codes:
  0 Succeeded (or done)   10 Failed   11 Error   12 Cancelled   13 TimedOut
  5 not done in time      2 usage     3 refused by the server   4 unreachable
"""


class UsageError(Exception):
    """A bad argument (exit code 2)."""


def _common(top: bool) -> argparse.ArgumentParser:
    """The kubectl-like options, accepted before and after the command (kubectl passes
    ``kubectl asynctask -n NS get X`` on as ``-n NS get X``); after the command they are
    only set when given, so they never undo the ones before it."""
    common = argparse.ArgumentParser(add_help=False)

    def option(*flags: str, default: str | None = None, **kw: Any) -> None:
        common.add_argument(*flags, default=default if top else argparse.SUPPRESS, **kw)

    option("-n", "--namespace", help="the namespace (default: the context's)")
    option("--context", help="the kubeconfig context to use")
    option("--kubeconfig", help="the kubeconfig file (default: KUBECONFIG)")
    option(
        "--gateway",
        default=os.environ.get("ASYNCTASK_GATEWAY"),
        help="the gateway's URL instead of the Kubernetes API (ASYNCTASK_GATEWAY)",
    )
    option(
        "--token",
        default=os.environ.get("ASYNCTASK_TOKEN"),
        help="the gateway's bearer token (prefer ASYNCTASK_TOKEN)",
    )
    option("-o", "--output", choices=["json", "yaml"], help="machine output instead of text")
    return common


def parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    top = argparse.ArgumentParser(
        prog="asynctask",
        parents=[_common(top=True)],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Submit, follow and inspect AsyncTasks (also run as kubectl asynctask).",
    )
    top.add_argument("--version", action="version", version=version_line("asynctask"))
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=text, description=text)

    submit_arguments(command("submit", "create a task"))
    for name, text in (
        ("get", "show a task (by name, or by uid through the gateway)"),
        ("result", "print the result of a task that ended"),
    ):
        read_arguments(command(name, text))
    command("describe", "a task in detail").add_argument("name")
    for name, text in (
        ("cancel", "cancel a task, or every task matching -l (the records are kept)"),
        ("delete", "delete a task, or every task matching -l"),
    ):
        bulk_command(command(name, text))
    for name, text in (
        ("watch", "follow a task's progress to its end"),
        ("wait", "wait for a task to end; the exit code says how"),
    ):
        w = command(name, text)
        w.add_argument("name")
        w.add_argument("--timeout", type=float, metavar="SECONDS")
    list_arguments(command("list", "list tasks"))
    command("resubmit", "create a new task from a task's spec (live or archived)").add_argument(
        "name"
    )
    resource_cli.add_groups(sub, common)
    return top


def submit_arguments(s: argparse.ArgumentParser) -> None:
    """``submit``: the queue, the request and the task's settings."""
    s.add_argument("queue")
    s.add_argument(
        "--request",
        default="{}",
        help="the request as JSON, or @file.json (@- reads standard input); default {}",
    )
    s.add_argument("--name", help="the task's name (default: generated)")
    s.add_argument("-l", "--label", action="append", default=[], help="key=value")
    for flag in ("timeout", "queue-timeout", "retries", "retry-backoff", "ttl"):
        s.add_argument(f"--{flag}", type=int, metavar="N")
    s.add_argument(
        "--priority",
        type=int,
        metavar="N",
        help="-100..100, higher first among tasks held on a queue with an AsyncQueue",
    )
    s.add_argument("--webhook", help="a URL that receives the task's CloudEvents")
    s.add_argument("--idempotency-key", help="a retry with this key returns the same task")
    delay_arguments(s)
    s.add_argument("--wait", action="store_true", help="follow the task to its end")
    s.add_argument("--wait-timeout", type=float, metavar="SECONDS")


def list_arguments(ls: argparse.ArgumentParser) -> None:
    """``list``: filters of the live tasks, or of the history archive (``--archived``)."""
    ls.add_argument("--queue")
    ls.add_argument(
        "--phase", choices=[str(c) for c in render.EXIT_CODES] + ["Pending", "Processing"]
    )
    ls.add_argument("-l", "--selector", help="a label selector")
    ls.add_argument(
        "--archived",
        action="store_true",
        help="finished tasks from the history archive (through the gateway), newest first",
    )
    ls.add_argument("--creator", help="with --archived: only tasks this user created")
    ls.add_argument("--since", help="with --archived: finished at or after (RFC 3339)")
    ls.add_argument("--until", help="with --archived: finished before (RFC 3339)")


def bulk_command(c: argparse.ArgumentParser) -> None:
    """``cancel``/``delete``: one task by name, or every task a label selector matches."""
    c.add_argument("name", nargs="?")
    c.add_argument("-l", "--selector", help="every task these labels match (e.g. team=x)")
    c.add_argument(
        "--dry-run", action="store_true", help="with -l: list what would be done, do nothing"
    )
    c.add_argument("-y", "--yes", action="store_true", help="with -l: do not ask on a terminal")


def delay_arguments(submit: argparse.ArgumentParser) -> None:
    """``submit --at`` / ``--in``: held until then (when.py turns either into one time)."""
    submit.add_argument(
        "--at",
        metavar="TIME",
        help="queue it no earlier than TIME: RFC 3339 (2026-12-05T12:00:00Z), or a time of "
        "day in UTC (12:00: today's if still ahead, else tomorrow's)",
    )
    submit.add_argument(
        "--in", dest="delay", metavar="DELAY", help="queue it after DELAY: 90s, 10m, 1h30m"
    )


def connect(args: argparse.Namespace) -> Client:
    if args.gateway:
        return Client(args.gateway, token=args.token, namespace=args.namespace or "default")
    return Client.from_kubeconfig(
        context=args.context, namespace=args.namespace, path=args.kubeconfig
    )


def read_request(value: str) -> Any:
    """``--request``: JSON text, or ``@path`` (``@-``: standard input)."""
    if value.startswith("@"):
        try:
            value = sys.stdin.read() if value == "@-" else Path(value[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {value[1:]}: {exc.strerror}") from exc
    try:
        return json.loads(value)
    except ValueError as exc:
        raise UsageError(f"--request is not JSON: {exc}") from exc


def labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--label {pair!r}: expected key=value")
        out[key] = value
    return out


def finish(args: argparse.Namespace, task: Task, *, live: bool, timeout: float | None) -> int:
    """Follow to the end (live on a terminal unless ``-o``), then the outcome."""
    if live and not args.output:
        follow(task, sys.stdout, tty=sys.stdout.isatty(), timeout=timeout)
    else:
        for _ in task.updates(timeout):
            pass
    view = task.view
    if args.output:
        show(args, task, "")
    elif not live:
        print(render.plain_line(view))
    if view.done and view.error is not None:
        print(f"{view.phase.value}: {view.error.reason}: {view.error.message}", file=sys.stderr)
    elif view.done and live and not args.output and view.result is not None:
        print(json.dumps(view.result, ensure_ascii=False))
    return render.exit_code(view)


def cmd_submit(args: argparse.Namespace, client: Client) -> int:
    request = read_request(args.request)
    try:
        due = when.due_time(args.at, args.delay, datetime.now(UTC))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    task = client.submit(
        args.queue,
        request,
        timeout=args.timeout,
        queue_timeout=args.queue_timeout,
        retries=args.retries,
        retry_backoff=args.retry_backoff,
        ttl=args.ttl,
        webhook=args.webhook,
        idempotency_key=args.idempotency_key,
        name=args.name,
        labels=labels(args.label),
        not_before=due,
        priority=args.priority,
    )
    submitted = f"asynctask/{task.name} submitted"
    if due is not None:  # the absolute time --at or --in stands for
        submitted += f", scheduled for {when.rfc3339(due)}"
    if args.wait:
        if not args.output:
            print(submitted, file=sys.stderr)
        return finish(args, task, live=True, timeout=args.wait_timeout)
    show(args, task, submitted)
    return 0


def cmd_list(args: argparse.Namespace, client: Client) -> int:
    if args.archived:
        tasks = client.history(
            queue=args.queue,
            phase=args.phase,
            label_selector=args.selector,
            creator=args.creator,
            since=args.since,
            until=args.until,
        )
    elif args.creator or args.since or args.until:
        raise UsageError("--creator, --since and --until filter the history: add --archived")
    else:
        tasks = client.list(queue=args.queue, phase=args.phase, label_selector=args.selector)
    if args.output:
        print(render.machine({"items": [t.view.to_json() for t in tasks]}, args.output))
    elif tasks:
        print(render.table([t.view for t in tasks]))
    else:
        print(f"No tasks found in {client.namespace} namespace.", file=sys.stderr)
    return 0


def cmd_describe(args: argparse.Namespace, client: Client) -> int:
    details = client.describe(args.name)
    if args.output:
        print(
            render.machine(
                {
                    "task": details.view.to_json(),
                    "spec": details.spec,
                    "status": details.status,
                    "events": details.events,
                },
                args.output,
            )
        )
    else:
        print(render.describe(details))
    return 0


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    if one_or_many(args):
        return bulk.run(args, client, "cancel")
    task = client.get(args.name)
    task.cancel()
    show(args, task, f"asynctask/{task.name} cancel requested")
    return 0


def cmd_delete(args: argparse.Namespace, client: Client) -> int:
    if one_or_many(args):
        return bulk.run(args, client, "delete")
    client.get(args.name).delete()
    print(f'asynctask "{args.name}" deleted')
    return 0


def one_or_many(args: argparse.Namespace) -> bool:
    """Whether the command acts on a selector (``True``) or one name; exactly one given."""
    if (args.name is None) == (args.selector is None):
        raise UsageError(f"{args.command}: give a task's name or -l SELECTOR (one of them)")
    if args.selector is None and (args.dry_run or args.yes):
        raise UsageError("--dry-run and --yes go with -l SELECTOR")
    return args.selector is not None


def cmd_watch(args: argparse.Namespace, client: Client) -> int:
    return finish(args, client.get(args.name), live=True, timeout=args.timeout)


def cmd_wait(args: argparse.Namespace, client: Client) -> int:
    return finish(args, client.get(args.name), live=False, timeout=args.timeout)


COMMANDS: dict[str, Callable[[argparse.Namespace, Client], int]] = {
    "submit": cmd_submit,
    "get": cmd_get,
    "list": cmd_list,
    "describe": cmd_describe,
    "result": cmd_result,
    "cancel": cmd_cancel,
    "delete": cmd_delete,
    "watch": cmd_watch,
    "wait": cmd_wait,
    "schedule": resource_cli.schedule,
    "queue": resource_cli.queue,
    "resubmit": cmd_resubmit,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with connect(args) as client:
            return COMMANDS[args.command](args, client)
    except (UsageError, resource_cli.ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return render.USAGE
    except ApiError as exc:
        print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
        for cause in exc.causes:
            print(f"  {cause.get('field', '')}: {cause.get('message', '')}", file=sys.stderr)
        return render.REFUSED
    except TaskDeleted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return render.REFUSED
    except (ConnectionFailed, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return render.UNREACHABLE
    except WaitTimeout as exc:
        print(f"error: {exc}", file=sys.stderr)
        return render.NOT_DONE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
