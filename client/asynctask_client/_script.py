"""The ``asynctask`` and ``kubectl-asynctask`` commands: a clear message when the client's
extra is missing (the base distribution is the worker SDK; httpx and PyYAML come with
``asynctask[client]``). Only the standard library is imported before the check."""

from __future__ import annotations

import importlib.util
import sys

#: What ``asynctask[client]`` adds, as import names.
CLIENT_MODULES = ("httpx", "yaml")


def missing_modules() -> list[str]:
    return [m for m in CLIENT_MODULES if importlib.util.find_spec(m) is None]


def main(argv: list[str] | None = None) -> int:
    missing = missing_modules()
    if missing:
        print(
            f"asynctask needs {', '.join(missing)}, which this installation lacks: the "
            "client's dependencies come with the extra `asynctask[client]` "
            "(pip install 'asynctask[client]').",
            file=sys.stderr,
        )
        return 2
    from asynctask_client.cli import main as run  # after the check

    return run(argv)
