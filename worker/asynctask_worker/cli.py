"""``asynctask-worker module:app``: serve an App's handlers from RabbitMQ."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from asynctask_worker._entrypoint import version_line
from asynctask_worker._runtime.logs import configure_logging
from asynctask_worker._runtime.runtime import Worker
from asynctask_worker.app import App
from asynctask_worker.settings import WorkerSettings

__all__ = ["load_app", "main", "parse_settings"]


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (attribute defaults to ``app``) and check it is an App."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules in the current directory
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise SystemExit(f"{spec} is not an asynctask_worker.App")
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asynctask-worker",
        description="Run AsyncTask handlers. Settings come from ASYNCTASK_WORKER_* variables; "
        "flags override them. SIGTERM stops gracefully; a second one at once.",
    )
    parser.add_argument("--version", action="version", version=version_line("asynctask-worker"))
    parser.add_argument("app", help="the App to serve, as module:attribute (e.g. myapp.tasks:app)")
    parser.add_argument("--amqp-url", help="RabbitMQ URL (ASYNCTASK_WORKER_AMQP_URL)")
    parser.add_argument("--queues", help="comma-separated queues to serve (default: all)")
    parser.add_argument("--concurrency", type=int, help="tasks run at once")
    parser.add_argument(
        "--pool",
        choices=["thread", "process"],
        help="run handlers in threads or in killable child processes",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        dest="grace_period_seconds",
        help="seconds running tasks get to finish on SIGTERM",
    )
    parser.add_argument(
        "--cancel-grace",
        type=float,
        dest="cancel_grace_seconds",
        help="seconds a cancelled handler gets before a hard stop",
    )
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument("--log-format", choices=["text", "json"])
    parser.add_argument("--log-level")
    return parser


def parse_settings(argv: list[str] | None = None) -> tuple[str, WorkerSettings]:
    """The app spec and the settings: environment first, flags on top."""
    args = vars(_parser().parse_args(argv))
    spec = args.pop("app")
    overrides: dict[str, Any] = {k: v for k, v in args.items() if v is not None}
    return spec, WorkerSettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    spec, settings = parse_settings(argv)
    configure_logging(settings.log_format, settings.log_level)
    worker = Worker(load_app(spec), settings)
    worker.install_signal_handlers()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
