"""The ``asynctask`` and ``kubectl-asynctask`` commands: ``--version``, and a clear message
when the client's extra (httpx, PyYAML) is missing, before anything of it is imported
(:mod:`asynctask_worker._entrypoint`)."""

from __future__ import annotations

from asynctask_worker._entrypoint import run_command

#: What the ``client`` extra adds, as import names.
CLIENT_MODULES = ("httpx", "yaml")


def _run(argv: list[str] | None) -> int:
    from asynctask_client.cli import main  # after the check

    return main(argv)


def main(argv: list[str] | None = None) -> int:
    return run_command("asynctask", "client", CLIENT_MODULES, _run, argv)
