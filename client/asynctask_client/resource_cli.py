"""``asynctask schedule …`` and ``asynctask queue …``: the CLI's groups for AsyncTaskSchedules
(``list``, ``get``, ``create -f FILE``, ``suspend``, ``resume``, ``trigger``, ``delete``) and
AsyncQueues (``list``, ``get``, ``pause``, ``resume``), through either transport.

What they print is :mod:`asynctask_client.render`'s (tables like ``kubectl get``, or the
views with ``-o json|yaml``); the calls are :class:`~asynctask_client.Client`'s.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from asynctask_client import render
from asynctask_client.client import Client
from asynctask_worker.resource_views import QueueView, ScheduleView


class ManifestError(ValueError):
    """A ``-f FILE`` that cannot be read or is not a schedule's manifest (exit code 2)."""


def add_groups(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The ``schedule`` and ``queue`` commands, each with its actions (every action takes
    the kubectl-like options too, as the other commands do)."""
    group = sub.add_parser(
        "schedule", parents=[common], help="AsyncTaskSchedules: tasks on a cron or an interval"
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="the namespace's schedules")
    create = actions.add_parser("create", parents=[common], help="create one from a manifest")
    create.add_argument(
        "-f",
        "--filename",
        required=True,
        help="an AsyncTaskSchedule manifest (YAML or JSON; -: stdin)",
    )
    for action, text in (
        ("get", "show a schedule: next and last run, active tasks, Ready"),
        ("suspend", "stop creating tasks until resumed"),
        ("resume", "create tasks again from the next slot"),
        ("trigger", "run the schedule's template now (a task <name>-manual-...)"),
        ("delete", "delete a schedule (its tasks are collected with it)"),
    ):
        actions.add_parser(action, parents=[common], help=text).add_argument("name")
    group = sub.add_parser(
        "queue", parents=[common], help="AsyncQueues: held and in-flight work, pause, resume"
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="the cluster's queues with a policy")
    for action, text in (
        ("get", "show a queue: held, in flight, ready, rate, conditions"),
        ("pause", "hold the queue's tasks (running ones finish)"),
        ("resume", "admit the queue's held tasks again"),
    ):
        actions.add_parser(action, parents=[common], help=text).add_argument("name")


def read_manifest(filename: str) -> Any:
    """``-f``: a YAML (or JSON) document from a file, or standard input for ``-``."""
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
    except OSError as exc:
        raise ManifestError(f"cannot read {filename}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{filename} is not YAML: {exc}") from exc


def _print_schedule(args: argparse.Namespace, view: ScheduleView, text: str) -> None:
    print(render.machine(view.to_json(), args.output) if args.output else text)


def _print_queue(args: argparse.Namespace, view: QueueView, text: str) -> None:
    print(render.machine(view.to_json(), args.output) if args.output else text)


def schedule(args: argparse.Namespace, client: Client) -> int:
    """``asynctask schedule ACTION``."""
    if args.action == "list":
        views = client.list_schedules()
        if args.output:
            print(render.machine({"items": [v.to_json() for v in views]}, args.output))
        elif views:
            print(render.schedule_table(views))
        else:
            print(f"No schedules found in {client.namespace} namespace.", file=sys.stderr)
        return 0
    if args.action == "create":
        try:
            view = client.create_schedule(read_manifest(args.filename))
        except ManifestError:
            raise
        except ValueError as exc:  # not a schedule's manifest (check_schedule)
            raise ManifestError(f"{args.filename}: {exc}") from exc
        _print_schedule(args, view, f"asynctaskschedule/{view.name} created")
        return 0
    return SCHEDULE_CALLS[args.action](args, client)


def _get_schedule(args: argparse.Namespace, client: Client) -> int:
    view = client.get_schedule(args.name)
    _print_schedule(args, view, render.schedule_details(view))
    return 0


def _suspend(args: argparse.Namespace, client: Client) -> int:
    view = client.suspend_schedule(args.name)
    _print_schedule(args, view, f"asynctaskschedule/{view.name} suspended")
    return 0


def _resume(args: argparse.Namespace, client: Client) -> int:
    view = client.resume_schedule(args.name)
    _print_schedule(args, view, f"asynctaskschedule/{view.name} resumed")
    return 0


def _trigger(args: argparse.Namespace, client: Client) -> int:
    task = client.trigger_schedule(args.name)
    text = f"asynctask/{task.name} created from asynctaskschedule/{args.name}"
    print(render.machine(task.view.to_json(), args.output) if args.output else text)
    return 0


def _delete(args: argparse.Namespace, client: Client) -> int:
    client.delete_schedule(args.name)
    print(f'asynctaskschedule "{args.name}" deleted')
    return 0


SCHEDULE_CALLS: dict[str, Callable[[argparse.Namespace, Client], int]] = {
    "get": _get_schedule,
    "suspend": _suspend,
    "resume": _resume,
    "trigger": _trigger,
    "delete": _delete,
}


def queue(args: argparse.Namespace, client: Client) -> int:
    """``asynctask queue ACTION``."""
    if args.action == "list":
        views = client.list_queues()
        if args.output:
            print(render.machine({"items": [v.to_json() for v in views]}, args.output))
        elif views:
            print(render.queue_table(views))
        else:
            print("No queues found (AsyncQueue).", file=sys.stderr)
        return 0
    if args.action == "get":
        view = client.get_queue(args.name)
        _print_queue(args, view, render.queue_details(view))
        return 0
    paused = args.action == "pause"
    view = client.pause_queue(args.name) if paused else client.resume_queue(args.name)
    _print_queue(args, view, f"asyncqueue/{view.name} {'paused' if paused else 'resumed'}")
    return 0
