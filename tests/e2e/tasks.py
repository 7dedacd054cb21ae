"""Helpers for e2e tests: create AsyncTasks, wait for phases, read status."""

from __future__ import annotations

import json
import time
from typing import Any

from testbed import ControlPlane


def create(cp: ControlPlane, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    manifest = {"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTask",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}
    out = cp.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(manifest)).stdout
    created: dict[str, Any] = json.loads(out)
    return created


def get(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(
        cp.kubectl("get", "asynctask", name, "-n", ns, "-o", "json").stdout)
    return obj


def status(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    return dict(get(cp, ns, name).get("status") or {})


def wait_phase(cp: ControlPlane, ns: str, name: str, phase: str,
               timeout: float = 60) -> dict[str, Any]:
    cp.kubectl("wait", "-n", ns, f"--for=jsonpath={{.status.phase}}={phase}",
               f"asynctask/{name}", f"--timeout={int(timeout)}s", timeout=timeout + 10)
    return status(cp, ns, name)


def wait_for(what: str, check: Any, timeout: float = 30, interval: float = 0.2) -> float:
    """Poll ``check()`` until truthy; returns the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def patch_spec(cp: ControlPlane, ns: str, name: str, spec: dict[str, Any],
               check: bool = True) -> Any:
    return cp.kubectl("patch", "asynctask", name, "-n", ns, "--type=merge", "-p",
                      json.dumps({"spec": spec}), check=check)
