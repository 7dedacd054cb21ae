"""Pathological requests through the real apiserver: each ends in a clear terminal phase
with a reason, or is refused at admission with a readable message, within seconds.

Created with raw JSON text (``kubectl create --raw``), so what reaches the apiserver is
exactly the bytes written here: escapes, huge numbers and all.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from asynctask_worker.messages import MAX_REQUEST_DEPTH
from testbed import ControlPlane, wait_until
from tests.e2e.tasks import get

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator", "lifecycle_worker")]

PATH = "/apis/asynctask.dev/v1alpha1/namespaces/{ns}/asynctasks"


def submit(
    cp: ControlPlane,
    ns: str,
    name: str,
    request_json: str,
    queue: str = "echo",
) -> subprocess.CompletedProcess[str]:
    """POST an AsyncTask whose spec.request is ``request_json``, verbatim."""
    body = (
        '{"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTask", "metadata": '
        f'{{"name": "{name}", "namespace": "{ns}"}}, "spec": {{"queue": "{queue}", '
        f'"request": {request_json}}}}}'
    )
    return cp.kubectl(
        "create", "--raw", PATH.format(ns=ns), "-f", "-", input=body, check=False, timeout=120
    )


def terminal(cp: ControlPlane, ns: str, name: str, timeout: float = 30) -> dict[str, Any]:
    """The status once terminal; fails if the task is still Pending or Processing."""
    final: dict[str, Any] = {}

    def done() -> bool:
        # Only the status: the object may be nested deeper than Python's json reads.
        text = cp.kubectl("get", "asynctask", name, "-n", ns, "-o", "jsonpath={.status}").stdout
        final.update(json.loads(text or "{}"))
        return final.get("phase") in ("Succeeded", "Failed", "Error", "Cancelled", "TimedOut")

    wait_until(f"{name} to end", done, timeout)
    return final


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def stored_request(cp: ControlPlane, ns: str, name: str) -> Any:
    return get(cp, ns, name)["spec"].get("request")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def outcome(cp: ControlPlane, ns: str, name: str, request_json: str) -> str:
    created = submit(cp, ns, name, request_json)
    if created.returncode != 0:
        return f"refused at admission: {created.stderr.strip()[:200]}"
    st = terminal(cp, ns, name)
    reason = (st.get("error") or {}).get("reason", "")
    return f"{st['phase']} {reason}".strip()


def test_nesting_as_deep_as_the_wire_allows_runs_and_deeper_ends_in_request_too_deep(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    assert submit(cp, ns, "deep-ok", nested(MAX_REQUEST_DEPTH)).returncode == 0
    st = terminal(cp, ns, "deep-ok")
    assert st["phase"] == "Succeeded"
    assert st["result"]["sha256"] == digest(stored_request(cp, ns, "deep-ok"))
    for depth in (9990, MAX_REQUEST_DEPTH + 1, 200, 1000):
        name = f"deep-{depth}"
        assert submit(cp, ns, name, nested(depth)).returncode == 0, name
        st = terminal(cp, ns, name)
        assert (st["phase"], st["error"]["reason"]) == ("Error", "RequestTooDeep"), name
        assert f"nests {depth} levels deep" in st["error"]["message"]
        print(f"\nrequest nested {depth} deep: Error RequestTooDeep")


def test_the_apiserver_refuses_nesting_beyond_ten_thousand_levels(
    control_plane: ControlPlane, namespace: str
) -> None:
    refused = submit(control_plane, namespace, "deep-10001", nested(10_001))
    assert refused.returncode != 0 and "exceeded max depth" in refused.stderr


def run_echo(cp: ControlPlane, ns: str, name: str, request_json: str) -> Any:
    """Submit to the echo handler; it must succeed having received exactly what the
    apiserver stored. Returns what the apiserver stored."""
    created = submit(cp, ns, name, request_json)
    assert created.returncode == 0, created.stderr
    st = terminal(cp, ns, name)
    assert st["phase"] == "Succeeded", st
    stored = stored_request(cp, ns, name)
    assert st["result"]["sha256"] == digest(stored), name
    return stored


def test_unusual_unicode_reaches_the_handler_as_the_apiserver_stored_it(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    text = json.dumps(
        {
            "rtl": "\u0645\u0631\u062d\u0628\u0627 \u202e gnp.exe",
            "emoji": "\U0001f469\u200d\U0001f52c",
            "nul": "a\u0000b",
            "escaped-pair": "x",
            "lone-high": "y",
            "lone-low": "z",
        }
    )
    # JSON escapes written by hand: a surrogate pair, and lone surrogates (invalid Unicode).
    text = (
        text.replace('"x"', '"\\ud83d\\ude00"')
        .replace('"y"', '"\\ud800"')
        .replace('"z"', '"\\udc00!"')
    )
    stored = run_echo(cp, ns, "unicode", text)
    assert stored["nul"] == "a\u0000b" and stored["escaped-pair"] == "\U0001f600"
    assert stored["emoji"] == "\U0001f469\u200d\U0001f52c"
    # Go's JSON decoder turns a lone surrogate into U+FFFD: what every reader gets.
    assert stored["lone-high"] == "\ufffd" and stored["lone-low"] == "\ufffd!"
    print(f"\nunicode: Succeeded; lone surrogates stored as U+FFFD: {stored!r}")


def test_invalid_utf8_is_stored_as_replacement_characters(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    body = (
        b'{"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTask", "metadata": '
        b'{"name": "bad-utf8", "namespace": "' + namespace.encode() + b'"}, "spec": '
        b'{"queue": "echo", "request": {"b": "\xff\xfe ok"}}}'
    )
    manifest = tmp_path / "bad-utf8.json"
    manifest.write_bytes(body)
    created = control_plane.kubectl(
        "create", "--raw", PATH.format(ns=namespace), "-f", str(manifest), check=False
    )
    print(f"\ninvalid UTF-8: {'created' if created.returncode == 0 else created.stderr}")
    assert created.returncode == 0, created.stderr
    st = terminal(control_plane, namespace, "bad-utf8")
    stored = stored_request(control_plane, namespace, "bad-utf8")
    assert st["phase"] == "Succeeded" and st["result"]["sha256"] == digest(stored)
    assert stored == {"b": "\ufffd\ufffd ok"}


def test_numbers_outside_int64_and_float64(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    # Out of float64's range: the apiserver refuses it, saying so.
    refused = submit(cp, ns, "huge-float", '{"n": 1e400}')
    assert refused.returncode != 0
    assert "cannot unmarshal number 1e400" in refused.stderr
    # Beyond int64, and below float64's smallest: stored as the apiserver reads them.
    stored = run_echo(
        cp,
        ns,
        "big-numbers",
        '{"big": 123456789012345678901234567890, '
        '"int64max+1": 9223372036854775808, "neg": -99999999999999999999, '
        '"tiny": 1e-400}',
    )
    print(f"\nnumbers beyond int64 / below float64, as stored: {stored!r}")
    assert stored["tiny"] == 0
    assert stored["big"] == pytest.approx(1.2345678901234568e29)


def test_many_keys_run_and_sizes_up_to_what_admission_allows_end_clearly(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    many = json.dumps({f"k{i}": i for i in range(15_000)})
    assert len(many) < 256 * 1024
    run_echo(cp, ns, "many-keys", many)
    under = json.dumps({"blob": "x" * (256 * 1024 - 20)})
    assert len(under) <= 256 * 1024
    run_echo(cp, ns, "just-under", under)
    for name, size in (("just-over", 256 * 1024 + 1), ("large", 1_400_000)):
        assert submit(cp, ns, name, json.dumps({"blob": "x" * size})).returncode == 0
        st = terminal(cp, ns, name)
        assert (st["phase"], st["error"]["reason"]) == ("Error", "RequestTooLarge"), name
    for size in (2_000_000, 3_500_000):
        refused = submit(cp, ns, f"too-large-{size}", json.dumps({"blob": "x" * size}))
        print(f"\n{size} bytes: {refused.stderr.strip()[:160]}")
        assert refused.returncode != 0
        assert "too large" in refused.stderr.lower()


def test_kubectl_apply_refuses_near_the_limit_but_server_side_apply_does_not(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "near-limit.json"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "asynctask.dev/v1alpha1",
                "kind": "AsyncTask",
                "metadata": {"name": "near-limit", "namespace": namespace},
                "spec": {"queue": "echo", "request": {"blob": "x" * (256 * 1024 - 100)}},
            }
        )
    )
    client_side = control_plane.kubectl("apply", "-f", str(manifest), check=False)
    assert client_side.returncode != 0 and "Too long" in client_side.stderr
    # Nothing was created: the last-applied annotation (the whole manifest) is over the
    # apiserver's 256 KiB limit for all annotations together.
    assert (
        control_plane.kubectl(
            "get", "asynctask", "near-limit", "-n", namespace, check=False
        ).returncode
        != 0
    )
    print(f"\nkubectl apply, a request of 256 KiB - 100 bytes: {client_side.stderr.strip()[:200]}")
    control_plane.kubectl("apply", "--server-side", "-f", str(manifest))
    assert terminal(control_plane, namespace, "near-limit")["phase"] == "Succeeded"
