"""The worker runtime's internals (kopf's ``_core`` convention): not part of the SDK's API.

What a handler author or a test imports is what :mod:`asynctask_worker` exports, plus
:mod:`asynctask_worker.testing`, and the wire contract (:mod:`asynctask_worker.messages`,
:mod:`asynctask_worker.topology`) that the operator shares. Everything here may change
between releases without notice.
"""
