"""The ``asynctask-gateway`` command: a clear message when the gateway's extra is missing.

The base distribution ``asynctask`` is the worker SDK; the gateway's dependencies (aiohttp,
the ``kubernetes`` package for its configuration loaders) come with ``asynctask[gateway]``.
Only the standard library is imported before the check.
"""

from __future__ import annotations

import importlib.util
import sys

#: What ``asynctask[gateway]`` adds, as import names.
GATEWAY_MODULES = ("aiohttp", "kubernetes")


def missing_modules() -> list[str]:
    return [m for m in GATEWAY_MODULES if importlib.util.find_spec(m) is None]


def main(argv: list[str] | None = None) -> int:
    missing = missing_modules()
    if missing:
        print(
            f"asynctask-gateway needs {', '.join(missing)}, which this installation lacks: "
            "the gateway's dependencies come with the extra `asynctask[gateway]` "
            "(pip install 'asynctask[gateway]').",
            file=sys.stderr,
        )
        return 2
    from asynctask_gateway.cli import main as run  # after the check

    run(argv)
    return 0
