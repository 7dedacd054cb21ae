"""How the operator sets kopf up: it runs the process, and watches nothing.

kopf runs the operator's process: start-up and clean-up, signals, the liveness endpoint
and its probes. It watches no resource: AsyncTasks are listed and watched by the
operator itself (:mod:`task_watch`), because kopf's per-object machinery was most of the
operator's CPU with many tasks. So:

* kopf posts no Kubernetes Events of its own below WARNING (the operator records its own);
* kopf does not watch CustomResourceDefinitions for resources to serve (there are none:
  no ``@kopf.on.*`` resource handler is registered, and a unit test keeps it that way).
"""

from __future__ import annotations

import logging

import kopf


def configure(settings: kopf.OperatorSettings) -> None:
    settings.posting.level = logging.WARNING
    settings.scanning.disabled = True
