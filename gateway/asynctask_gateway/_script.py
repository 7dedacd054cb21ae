"""The ``asynctask-gateway`` command: ``--version``, and a clear message when the gateway's
extra (aiohttp, the ``kubernetes`` package for its configuration loaders) is missing, before
anything of it is imported (:mod:`asynctask_worker._entrypoint`)."""

from __future__ import annotations

from asynctask_worker._entrypoint import run_command

#: What the ``gateway`` extra adds, as import names.
GATEWAY_MODULES = ("aiohttp", "kubernetes")


def _run(argv: list[str] | None) -> int:
    from asynctask_gateway.cli import main  # after the check

    main(argv)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command("asynctask-gateway", "gateway", GATEWAY_MODULES, _run, argv)
