"""The ``asynctask-operator`` command: ``--version``, and a clear message when the operator's
extra (kopf, the Kubernetes client, aiohttp) is missing, before anything of it is imported
(:mod:`asynctask_worker._entrypoint`)."""

from __future__ import annotations

from asynctask_worker._entrypoint import run_command

#: What the ``operator`` extra adds, as import names.
OPERATOR_MODULES = ("kopf", "kubernetes", "aiohttp")


def _run(argv: list[str] | None) -> int:
    from asynctask_operator.cli import main  # after the check

    return main(argv)


def main(argv: list[str] | None = None) -> int:
    return run_command("asynctask-operator", "operator", OPERATOR_MODULES, _run, argv)
