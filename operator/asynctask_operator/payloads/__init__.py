"""Large payloads in S3-compatible object storage (docs/payloads.md): the operator's side.

The operator never carries the bytes. It presigns, per publish, a GET URL of a task's
``spec.requestRef`` and a PUT URL of its result key for the worker (:mod:`.objects`),
checks what comes back (:mod:`.checks`), deletes a deleted task's objects and sweeps
orphans (:mod:`.sweep`). :mod:`.settings` reads ``ASYNCTASK_S3_*``; :mod:`.store` is the
boto3 adapter behind :class:`asynctask_operator.ports.PayloadStore`, imported only when
storage is configured. Nothing here imports boto3 but :mod:`.store`.
"""
