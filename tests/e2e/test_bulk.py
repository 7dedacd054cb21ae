"""Bulk actions by label selector, on the real control plane with the operator running:
``POST …/tasks:cancel`` and ``…/tasks:delete`` through the gateway, ``Client.cancel_many``
and ``delete_many`` through both transports, and ``asynctask cancel|delete -l``.

Each test labels its own tasks with a fresh ``team`` value, so exactly that group is the
one acted on; the tasks' queue has no worker, so they stay Pending until cancelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from asynctask_client import Client
from testbed import ControlPlane, wait_until
from tests.e2e.chart import token_kubeconfig
from tests.e2e.system import Process
from tests.e2e.tasks import get, wait_phase
from tests.e2e.test_cli import cli_env
from tests.e2e.test_cli_tty import EXITED, Terminal

if TYPE_CHECKING:
    from tests.e2e.gateway_client import Answer, Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.client_fixtures"]
QUEUE = "bk-unserved"


def team() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def submit(gateway: Gateway, label: str, count: int) -> list[str]:
    names = []
    for _ in range(count):
        answer = gateway.call("POST", gateway.tasks(), {"queue": QUEUE, "labels": {"team": label}})
        assert answer.status == 202, answer.body
        names.append(answer.json()["name"])
    return sorted(names)


def bulk(gateway: Gateway, action: str, query: str, token: str = "writer") -> Answer:
    return gateway.call("POST", f"{gateway.tasks()}:{action}?{query}", token=token)


def cancel_requested(cp: ControlPlane, ns: str, name: str) -> bool:
    return bool(get(cp, ns, name)["spec"].get("cancel"))


def names_in(cp: ControlPlane, ns: str, label: str) -> list[str]:
    out = cp.kubectl("get", "asynctasks", "-n", ns, "-l", f"team={label}", "-o", "json").stdout
    return sorted(obj["metadata"]["name"] for obj in json.loads(out)["items"])


def counts(doc: dict[str, Any]) -> tuple[int, int, int, int]:
    return doc["matched"], doc["changed"], doc["skipped"], doc["failed"]


def test_a_gateway_bulk_cancel_cancels_exactly_the_group_and_counts_it(
    control_plane: ControlPlane, gateway: Gateway, operator: Process
) -> None:
    ns, a, b = gateway.namespace, team(), team()
    group_a, group_b = submit(gateway, a, 3), submit(gateway, b, 2)
    ended = group_a[0]
    assert gateway.call("POST", f"{gateway.tasks()}/{ended}/cancel").status == 202
    wait_phase(control_plane, ns, ended, "Cancelled")
    answer = bulk(gateway, "cancel", f"labelSelector=team%3D{a}")
    assert answer.status == 200, answer.body
    doc = answer.json()
    assert doc["action"] == "cancel" and counts(doc) == (3, 2, 1, 0)
    assert {i["name"]: i["outcome"] for i in doc["items"]} == {
        ended: "skipped",
        group_a[1]: "cancelled",
        group_a[2]: "cancelled",
    }
    assert next(i for i in doc["items"] if i["name"] == ended)["reason"] == "AlreadyFinished"
    for name in group_a[1:]:
        wait_phase(control_plane, ns, name, "Cancelled")
    assert not any(cancel_requested(control_plane, ns, name) for name in group_b)

    def all_seen_cancelled() -> bool:
        listed = gateway.call("GET", f"{gateway.tasks()}?labelSelector=team%3D{a}").json()
        return all(item["phase"] == "Cancelled" for item in listed["items"])

    wait_until("the gateway's cache sees group a Cancelled", all_seen_cancelled)
    again = bulk(gateway, "cancel", f"labelSelector=team%3D{a}").json()
    assert counts(again) == (3, 0, 3, 0)  # idempotent: all already done


def test_a_reader_gets_403_and_nothing_changes(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    ns, label = gateway.namespace, team()
    names = submit(gateway, label, 2)
    for action, verb in (("cancel", "patch"), ("delete", "delete")):
        refused = bulk(gateway, action, f"labelSelector=team%3D{label}", token="reader")
        assert refused.status == 403, refused.body
        assert f"cannot {verb} asynctasks.asynctask.dev" in refused.problem["detail"]
    assert names_in(control_plane, ns, label) == names
    assert not any(cancel_requested(control_plane, ns, name) for name in names)


def test_a_selector_that_selects_everything_is_refused(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    ns, label = gateway.namespace, team()
    names = submit(gateway, label, 1)
    for action in ("cancel", "delete"):
        for query in ("", "labelSelector=", "labelSelector=%20%2C%20"):
            refused = bulk(gateway, action, query)
            assert refused.status == 400, refused.body
            assert refused.problem["reason"] == "SelectorRequired"
    assert names_in(control_plane, ns, label) == names
    assert not cancel_requested(control_plane, ns, names[0])


def test_a_gateway_bulk_delete_pages_with_continue_and_counts(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    ns, label, kept = gateway.namespace, team(), team()
    names, others = submit(gateway, label, 3), submit(gateway, kept, 1)
    first = bulk(gateway, "delete", f"labelSelector=team%3D{label}&limit=2").json()
    assert first["action"] == "delete" and counts(first) == (2, 2, 0, 0)
    assert [i["name"] for i in first["items"]] == names[:2] and first["continue"]
    rest = bulk(gateway, "delete", f"labelSelector=team%3D{label}&continue={first['continue']}")
    assert counts(rest.json()) == (1, 1, 0, 0) and rest.json()["continue"] is None
    wait_until("the group is gone", lambda: names_in(control_plane, ns, label) == [])
    assert names_in(control_plane, ns, kept) == others
    again = bulk(gateway, "delete", f"labelSelector=team%3D{label}").json()
    assert again["changed"] == 0 and again["failed"] == 0  # already gone: nothing to do


def test_the_client_cancels_and_deletes_by_selector_on_either_transport(
    control_plane: ControlPlane, client: Client, operator: Process
) -> None:
    ns, label, other = client.namespace, team(), team()
    tasks = [client.submit(QUEUE, {}, labels={"team": label}) for _ in range(2)]
    bystander = client.submit(QUEUE, {}, labels={"team": other})
    cancelled = client.cancel_many(f"team={label}")
    assert (cancelled.matched, cancelled.changed, cancelled.skipped) == (2, 2, 0)
    assert sorted(i.name for i in cancelled.items) == sorted(t.name for t in tasks)
    for task in tasks:
        wait_phase(control_plane, ns, task.name, "Cancelled")
    assert not cancel_requested(control_plane, ns, bystander.name)
    deleted = client.delete_many(f"team={label}")
    assert (deleted.matched, deleted.changed, deleted.failed) == (2, 2, 0)
    wait_until("the group is gone", lambda: names_in(control_plane, ns, label) == [])
    assert names_in(control_plane, ns, other) == [bystander.name]
    with pytest.raises(ValueError, match="at least one term"):
        client.cancel_many(" , ")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI off a terminal (standard input is not one: nothing is asked)."""
    done = subprocess.run(
        ["asynctask", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    print(f"$ asynctask {' '.join(args)}  -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done


@pytest.mark.parametrize("transport", ["kubernetes", "gateway"])
def test_the_cli_dry_runs_then_cancels_a_group_and_prints_the_counts(
    control_plane: ControlPlane,
    gateway: Gateway,
    writer_kubeconfig: Path,
    operator: Process,
    transport: str,
) -> None:
    ns, label = gateway.namespace, team()
    names = submit(gateway, label, 2)
    env = cli_env(writer_kubeconfig)
    if transport == "gateway":
        env.update(ASYNCTASK_GATEWAY=gateway.url, ASYNCTASK_TOKEN=gateway.tokens["writer"])
    flags = ["-n", ns]
    dry = run(env, "cancel", "-l", f"team={label}", "--dry-run", *flags)
    assert dry.returncode == 0
    assert dry.stdout.splitlines()[-1].startswith("2 matched: 2 would be cancelled")
    assert not any(cancel_requested(control_plane, ns, name) for name in names)
    done = run(env, "cancel", "-l", f"team={label}", "-o", "json", *flags)
    assert done.returncode == 0
    assert counts(json.loads(done.stdout)) == (2, 2, 0, 0)
    for name in names:
        wait_phase(control_plane, ns, name, "Cancelled")
    deleted = run(env, "delete", "-l", f"team={label}", *flags)
    assert deleted.returncode == 0
    assert deleted.stdout.splitlines()[-1] == "2 matched: 2 deleted, 0 skipped, 0 failed"
    wait_until("the group is gone", lambda: names_in(control_plane, ns, label) == [])


def test_the_cli_on_the_kubernetes_api_counts_each_refused_object_and_exits_3(
    control_plane: ControlPlane, gateway: Gateway, tmp_path: Path
) -> None:
    """Through the Kubernetes API the apiserver authorizes each object: a reader lists the
    group, every patch is refused, and each is counted as failed with its reason."""
    ns, label = gateway.namespace, team()
    names = submit(gateway, label, 2)
    reader = token_kubeconfig(control_plane, ns, "reader", tmp_path / "kubeconfig")
    done = run(cli_env(reader), "cancel", "-l", f"team={label}", "-o", "json")
    assert done.returncode == 3
    doc = json.loads(done.stdout)
    assert counts(doc) == (2, 0, 0, 2)
    assert {i["reason"] for i in doc["items"]} == {"Forbidden"}
    assert not any(cancel_requested(control_plane, ns, name) for name in names)


def asked(term: Terminal, times: int) -> Callable[[], bool]:
    return lambda: term.screen().count("[y/N]") == times


def exited(term: Terminal, times: int) -> Callable[[], bool]:
    return lambda: len(EXITED.findall(term.screen())) == times


def test_on_a_terminal_the_cli_asks_first_and_only_yes_goes_on(
    control_plane: ControlPlane, gateway: Gateway, writer_kubeconfig: Path
) -> None:
    ns, label = gateway.namespace, team()
    names = submit(gateway, label, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCTASK_", "TMUX"))}
    env.update(cli_env(writer_kubeconfig), TERM="xterm-256color", PS1="$ ")
    term = Terminal(env)
    try:
        for turn, (answer, exits) in enumerate((("n", 1), ("y", 0)), start=1):
            term.type(f"asynctask cancel -l team={label} -n {ns}; echo EXIT=$?")
            wait_until("the question", asked(term, turn))
            assert f'cancel 2 task(s) matching "team={label}"' in term.screen()
            term.type(answer)
            wait_until("the exit", exited(term, turn))
            assert EXITED.findall(term.screen())[-1] == f"EXIT={exits}"
            requested = [cancel_requested(control_plane, ns, name) for name in names]
            assert requested == [bool(exits == 0)] * 2
        assert "2 matched: 2 cancelled, 0 skipped, 0 failed" in term.screen()
        assert "nothing done" in term.screen()
    finally:
        term.close()
