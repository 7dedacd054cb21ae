"""What the console commands share before they import their own code: ``--version``, and a
clear message instead of an ImportError when the extra a command needs is missing.

The worker SDK is the base distribution, so every installation has this module; it imports
only the standard library (the commands run it before anything that the extra brings).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence

from asynctask_worker._version import __version__

#: The distribution's name on the package index (the import packages keep their names).
DISTRIBUTION = "asynctask-k8s"


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules (import names) this installation cannot import."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def version_line(prog: str) -> str:
    return f"{prog} {__version__}"


def run_command(
    prog: str,
    extra: str,
    modules: Sequence[str],
    run: Callable[[list[str] | None], int | None],
    argv: list[str] | None = None,
) -> int:
    """Print the version for ``--version``; exit 2 naming ``extra`` when any of ``modules``
    is missing; otherwise call ``run`` (which imports the command's own code)."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        print(version_line(prog))
        return 0
    missing = missing_modules(modules)
    if missing:
        print(
            f"{prog} needs {', '.join(missing)}, which this installation lacks: the "
            f"{extra}'s dependencies come with the extra `{DISTRIBUTION}[{extra}]` "
            f"(pip install '{DISTRIBUTION}[{extra}]').",
            file=sys.stderr,
        )
        return 2
    return run(argv) or 0
