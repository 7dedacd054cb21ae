"""How the operator sets kopf up: quiet, paged, and with nothing per object it never uses.

The operator registers ``@kopf.on.event`` for AsyncTasks and no change handlers
(``on.create``/``on.update``/…): what a task needs comes from its status. So:

* kopf posts no Kubernetes Events of its own below WARNING (the operator records its own);
* watches are long (the apiserver ends them after ``server_timeout``);
* the start-up listing comes in pages of :data:`LIST_CHUNK` objects, not one response of
  100k, and a task's per-object worker goes :data:`WORKER_IDLE_SECONDS` after its event
  (each holds the object it last saw, so 100k of them at start-up was a peak of memory);
* no diff base: kopf builds a deep copy of every object's "essence" on every event to
  detect changes for change handlers. With none registered it is never compared, and
  building it was about a sixth of the event loop's time while listing 30k tasks.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

LIST_CHUNK = 500
WORKER_IDLE_SECONDS = 1.0


class NoDiffBase(kopf.DiffBaseStorage):
    """The diff base of an operator without change handlers: empty, never stored."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure(settings: kopf.OperatorSettings) -> None:
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.chunk_size = LIST_CHUNK
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.persistence.diffbase_storage = NoDiffBase()
