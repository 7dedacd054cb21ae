"""The CLI's reads of one task's record, live or archived (docs/history.md): ``get`` and
``result`` (by name, or by uid through the gateway; a task no longer live is read from the
history archive, ``--archived`` reads only that), and ``resubmit``."""

from __future__ import annotations

import argparse
import json
import sys

from asynctask_client import render
from asynctask_client.client import Client, Task
from asynctask_client.errors import ApiError
from asynctask_client.kube import HISTORY_THROUGH_GATEWAY


def read_arguments(c: argparse.ArgumentParser) -> None:
    """``get``/``result``: one task; through the gateway a task no longer live is read from
    the history archive by itself, ``--archived`` reads the archive's record only."""
    c.add_argument("name", help="the task's name, or its uid (through the gateway)")
    c.add_argument(
        "--archived",
        action="store_true",
        help="the history archive's record (through the gateway), even while the task lives",
    )


def show(args: argparse.Namespace, task: Task, text: str) -> None:
    print(render.machine(task.view.to_json(), args.output) if args.output else text)


def read_task(args: argparse.Namespace, client: Client) -> Task:
    """The task ``get`` and ``result`` show: live, else (through the gateway) archived. A
    task the apiserver no longer holds is not found there: the message says where its
    history is read."""
    try:
        task = client.get(args.name, archived=args.archived)
    except ApiError as exc:
        if exc.status == 404 and client.transport.kind == "kubernetes":
            raise ApiError(404, exc.reason, f"{exc.message}; {HISTORY_THROUGH_GATEWAY}") from exc
        raise
    if task.view.archived and not args.output:
        print(
            f"asynctask/{task.name} is no longer live: read from the history archive "
            f"(uid {task.view.uid})",
            file=sys.stderr,
        )
    return task


def cmd_get(args: argparse.Namespace, client: Client) -> int:
    task = read_task(args, client)
    show(args, task, render.table([task.view]))
    return 0


def cmd_resubmit(args: argparse.Namespace, client: Client) -> int:
    task = client.resubmit(args.name)
    show(args, task, f"asynctask/{task.name} created from {args.name}")
    return 0


def cmd_result(args: argparse.Namespace, client: Client) -> int:
    view = read_task(args, client).view
    if not view.done:
        print(f"the task {view.name} is still {view.phase.value}", file=sys.stderr)
    elif view.error is not None:
        print(f"{view.phase.value}: {view.error.reason}: {view.error.message}", file=sys.stderr)
    elif args.output:
        print(render.machine(view.result, args.output))
    else:
        print(json.dumps(view.result, ensure_ascii=False))
    return render.exit_code(view)
