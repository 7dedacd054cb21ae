"""The handler of ``bench/payloads.py``: a stored request returned as the result.

Served as ``asynctask-worker payload_tasks:app`` (``bench/`` on PYTHONPATH). The request is
not JSON, so the SDK streams it to a file and checks its sha256 before the call; returning
the :class:`~asynctask_worker.Payload` streams that file back as the task's stored result:
per task, one download and one upload of the payload, and nothing held in memory.
"""

from __future__ import annotations

from asynctask_worker import App, Payload

app = App("bench-payloads")


@app.task("bench.payload-echo")
def echo(request: Payload) -> Payload:
    return request
