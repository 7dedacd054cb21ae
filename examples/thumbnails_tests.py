"""Unit tests for examples/thumbnails.py, in memory: no RabbitMQ needed."""

from __future__ import annotations

from pathlib import Path

from asynctask_worker import Phase
from asynctask_worker.messages import TaskRef
from asynctask_worker.testing import StubBroker, run_task
from thumbnails import app


def test_makes_one_thumbnail_per_size(tmp_path: Path) -> None:
    source = tmp_path / "cat.pgm"
    source.write_bytes(b"P5\n# a 4x2 grey image\n4 2\n255\n" + bytes(range(8)))
    result = run_task(
        app,
        "thumbnails",
        {"source": str(source), "output_dir": str(tmp_path / "out"), "sizes": [4, 2]},
    )
    assert result.phase is Phase.SUCCEEDED
    assert result.progress == [(50, "4px done"), (100, "2px done")]
    small = tmp_path / "out" / "cat-2.pnm"
    assert result.result == {"thumbnails": [str(tmp_path / "out" / "cat-4.pnm"), str(small)]}
    assert small.read_bytes() == b"P5\n2 1\n255\n" + bytes([0, 2])


def test_a_missing_source_is_a_business_failure(tmp_path: Path) -> None:
    result = run_task(
        app, "thumbnails", {"source": str(tmp_path / "nope.pgm"), "output_dir": str(tmp_path)}
    )
    assert result.phase is Phase.FAILED
    assert result.error is not None and result.error.reason == "SourceNotFound"


def test_a_task_cancelled_while_queued_never_runs(tmp_path: Path) -> None:
    task = TaskRef(uid="0b5a", namespace="default", name="cat-thumbnails")
    with StubBroker(app) as broker:
        broker.cancel(task)  # as the operator does when spec.cancel becomes true
        broker.enqueue("thumbnails", {"source": "cat.pgm", "output_dir": str(tmp_path)}, task=task)
        result = broker.result(task)
    assert result.phase is Phase.CANCELLED and not result.ran
