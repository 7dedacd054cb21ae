"""The ``asynctask-operator`` command: a clear message when the operator's extra is missing.

The base distribution ``asynctask`` is the worker SDK; the operator's dependencies (kopf,
the Kubernetes client, aiohttp) come with ``asynctask[operator]``. Without them the command
would die on an ImportError deep inside :mod:`asynctask_operator.cli`; it says what to
install instead. Only the standard library is imported before the check.
"""

from __future__ import annotations

import importlib.util
import sys

#: What ``asynctask[operator]`` adds, as import names.
OPERATOR_MODULES = ("kopf", "kubernetes", "aiohttp")


def missing_modules() -> list[str]:
    return [m for m in OPERATOR_MODULES if importlib.util.find_spec(m) is None]


def main(argv: list[str] | None = None) -> int:
    missing = missing_modules()
    if missing:
        print(
            f"asynctask-operator needs {', '.join(missing)}, which this installation lacks: "
            "the operator's dependencies come with the extra `asynctask[operator]` "
            "(pip install 'asynctask[operator]').",
            file=sys.stderr,
        )
        return 2
    from asynctask_operator.cli import main as run  # after the check

    return run(argv)
