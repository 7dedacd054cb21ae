"""Invalid manifests are refused by the real apiserver, with a message a person understands."""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed import ControlPlane, wait_until

pytestmark = pytest.mark.e2e

MANIFEST = """apiVersion: asynctask.dev/v1alpha1
kind: AsyncTask
metadata:
  name: {name}
spec:
{spec}
"""


def apply(cp: ControlPlane, ns: str, name: str, spec: str) -> tuple[int, str]:
    result = cp.kubectl(
        "apply", "-n", ns, "-f", "-", check=False, input=MANIFEST.format(name=name, spec=spec)
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "  queue: hello\n  timeoutSeconds: -1",
            "spec.timeoutSeconds: Invalid value: -1: spec.timeoutSeconds in body should be greater "
            "than or equal to 1",
        ),
        (
            "  queue: hello\n  timeoutSeconds: soon",
            'spec.timeoutSeconds: Invalid value: "string": spec.timeoutSeconds in body must be of '
            'type integer: "string"',
        ),
        ("  request: {}", "spec.queue: Required value"),
        (
            "  queue: Resize_Image",
            "spec.queue in body should match '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'",
        ),
    ],
)
def test_invalid_manifest_is_refused(
    control_plane: ControlPlane, namespace: str, spec: str, expected: str
) -> None:
    code, output = apply(control_plane, namespace, "bad", spec)
    assert code != 0, output
    assert 'The AsyncTask "bad" is invalid' in output
    assert expected in output
    # Nothing was stored.
    got = control_plane.kubectl("get", "asynctask", "bad", "-n", namespace, check=False)
    assert got.returncode != 0


def test_queue_is_immutable(control_plane: ControlPlane, namespace: str) -> None:
    code, output = apply(control_plane, namespace, "fixed", "  queue: hello")
    assert code == 0, output
    result = control_plane.kubectl(
        "patch",
        "asynctask",
        "fixed",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"queue":"other"}}',
        check=False,
    )
    assert result.returncode != 0
    assert (
        "spec.queue is immutable: create a new AsyncTask to run on another queue" in result.stderr
    )


def test_request_is_immutable(control_plane: ControlPlane, namespace: str) -> None:
    """The ValidatingAdmissionPolicy of deploy/admission/ (CEL cannot see into the free-form
    request from the CRD): another request is refused; the same one, cancel and status
    writes go through."""
    code, output = apply(
        control_plane,
        namespace,
        "frozen",
        '  queue: nobody-serves-this\n  request: {"size": 1, "tags": ["a"]}',
    )
    assert code == 0, output

    def patch(spec: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return control_plane.kubectl(
            "patch",
            "asynctask",
            "frozen",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            f'{{"spec":{spec}}}',
            *extra,
            check=False,
        )

    # The policy is enforced a moment after it is created (its informer syncs): wait with
    # server-side dry runs, which go through admission and store nothing.
    wait_until(
        "the policy to be enforced",
        lambda: patch('{"request":{"size":2}}', "--dry-run=server").returncode != 0,
        30,
    )
    message = "spec.request is immutable once the task is created"
    for other in ('{"request":{"size":2,"tags":["a"]}}', '{"request":"small"}', '{"request":null}'):
        result = patch(other)
        assert result.returncode != 0, other
        assert message in result.stderr, result.stderr
    assert patch('{"request":{"size":1,"tags":["a"]}}').returncode == 0  # unchanged: fine
    assert patch('{"cancel":true}').returncode == 0
    st = control_plane.kubectl(
        "get", "asynctask", "frozen", "-n", namespace, "-o", "jsonpath={.spec.request}"
    ).stdout
    assert json.loads(st) == {"size": 1, "tags": ["a"]}


def test_printer_columns_and_short_name(control_plane: ControlPlane, namespace: str) -> None:
    apply(control_plane, namespace, "shown", "  queue: nobody-serves-this")
    out = control_plane.kubectl("get", "atask", "-n", namespace, "-o", "wide").stdout
    assert out.split("\n")[0].split() == [
        "NAME",
        "QUEUE",
        "PHASE",
        "PROGRESS",
        "ATTEMPTS",
        "WORKER",
        "MESSAGE",
        "NOT-BEFORE",  # priority 1: -o wide only
        "PRIORITY",  # priority 1: -o wide only
        "AGE",
    ]
    narrow = control_plane.kubectl("get", "atask", "-n", namespace).stdout
    assert not {"NOT-BEFORE", "PRIORITY"} & set(narrow.split("\n")[0].split())
    explained = control_plane.kubectl("explain", "asynctask.spec.queue").stdout
    assert "The worker pool (task type) that runs this task" in explained


QUEUE = """apiVersion: asynctask.dev/v1alpha1
kind: AsyncQueue
metadata:
  name: {name}
spec:
{spec}
"""


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("  maxInFlight: 0", "spec.maxInFlight in body should be greater than or equal to 1"),
        ("  maxInFlight: -3", "spec.maxInFlight in body should be greater than or equal to 1"),
        (
            "  rateLimit: {perSecond: 0}",
            "spec.rateLimit.perSecond in body should be greater than 0",
        ),
        (
            "  rateLimit: {perSecond: -1}",
            "spec.rateLimit.perSecond in body should be greater than 0",
        ),
        (
            "  rateLimit: {perSecond: 5, burst: 0}",
            "spec.rateLimit.burst in body should be greater than or equal to 1",
        ),
        ("  fairness: {weights: {team-a: 0}}", "should be greater than or equal to 1"),
        ("  fairness: {weights: {Team_A: 2}}", "fairness.weights are keyed by namespace name"),
        ("  priority: {agingSeconds: 0}", "spec.priority.agingSeconds in body should be greater"),
    ],
)
def test_a_bad_queue_policy_is_refused(
    control_plane: ControlPlane, spec: str, expected: str
) -> None:
    result = control_plane.kubectl(
        "apply", "-f", "-", check=False, input=QUEUE.format(name="bad-policy", spec=spec)
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert 'The AsyncQueue "bad-policy" is invalid' in output
    assert expected in output
    assert control_plane.kubectl("get", "aqueue", "bad-policy", check=False).returncode != 0


def test_a_task_priority_out_of_range_is_refused(
    control_plane: ControlPlane, namespace: str
) -> None:
    code, output = apply(control_plane, namespace, "urgent", "  queue: q\n  priority: 101")
    assert code != 0 and "spec.priority in body should be less than or equal to 100" in output
    code, output = apply(control_plane, namespace, "urgent", "  queue: q\n  priority: 7")
    assert code == 0, output
    code, output = apply(control_plane, namespace, "urgent", "  queue: q\n  priority: 8")
    assert code != 0 and "spec.priority is immutable" in output


def test_queue_printer_columns(control_plane: ControlPlane) -> None:
    spec = "  maxInFlight: 5\n  rateLimit: {perSecond: 2.5, burst: 3}"
    control_plane.kubectl("apply", "-f", "-", input=QUEUE.format(name="columns.q", spec=spec))
    try:
        out = control_plane.kubectl("get", "aqueue", "columns.q", "-o", "wide").stdout
        header, row = out.splitlines()[:2]
        assert header.split() == [
            "NAME",
            "PAUSED",
            "HELD",
            "IN-FLIGHT",
            "MAX-IN-FLIGHT",
            "RATE",
            "READY",
            "CONSUMERS",
            "START-RATE",
            "OLDEST-HELD",
            "AGE",
        ]
        assert row.split()[:2] == ["columns.q", "false"] and "2.5" in row.split()
        explained = control_plane.kubectl("explain", "asyncqueue.spec.maxInFlight").stdout
        assert "The most tasks of this queue published and not yet finished" in explained
    finally:
        control_plane.kubectl("delete", "aqueue", "columns.q", check=False)
