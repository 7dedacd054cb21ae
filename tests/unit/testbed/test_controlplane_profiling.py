"""The apiserver's profiler is off unless a benchmark opts in."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.controlplane import PROFILING_ENV, ControlPlane, profiling_enabled


def _args(tmp_path: Path) -> list[str]:
    cp = ControlPlane(bin_dir=tmp_path)
    cp.etcd_url = "http://127.0.0.1:1"
    return cp._apiserver_args(tmp_path, tmp_path, 6443)


def test_profiling_is_off_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(PROFILING_ENV, raising=False)
    assert not profiling_enabled()
    assert "--profiling=false" in _args(tmp_path)
    assert "--profiling=true" not in _args(tmp_path)


@pytest.mark.parametrize("value", ["0", "true", "yes", ""])
def test_only_1_turns_it_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    monkeypatch.setenv(PROFILING_ENV, value)
    assert "--profiling=false" in _args(tmp_path)


def test_a_benchmark_opts_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PROFILING_ENV, "1")
    assert "--profiling=true" in _args(tmp_path)
    assert "--profiling=false" not in _args(tmp_path)


def test_a_profile_is_refused_when_not_opted_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PROFILING_ENV, raising=False)
    with pytest.raises(RuntimeError, match=PROFILING_ENV):
        ControlPlane(bin_dir=tmp_path).cpu_profile(1)
