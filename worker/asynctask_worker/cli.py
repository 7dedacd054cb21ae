"""``asynctask-worker module:app``: serve an App's handlers from RabbitMQ."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from typing import Any

from asynctask_worker.app import App
from asynctask_worker.runtime import Worker
from asynctask_worker.settings import WorkerSettings


class JsonFormatter(logging.Formatter):
    EXTRA = ("task_uid", "task_namespace", "task_name", "attempt", "queue")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        entry.update({k: getattr(record, k) for k in self.EXTRA if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def load_app(spec: str) -> App:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app")
    if not isinstance(app, App):
        raise SystemExit(f"{spec} is not an asynctask_worker.App")
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asynctask-worker",
        description="Run AsyncTask handlers. Settings come from ASYNCTASK_WORKER_* variables; "
                    "flags override them.")
    parser.add_argument("app", help="the App to serve, as module:attribute (e.g. myapp.tasks:app)")
    parser.add_argument("--amqp-url", help="RabbitMQ URL (ASYNCTASK_WORKER_AMQP_URL)")
    parser.add_argument("--queues", help="comma-separated queues to serve (default: all)")
    parser.add_argument("--concurrency", type=int, help="tasks run at once")
    parser.add_argument("--log-format", choices=["text", "json"])
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in {"amqp_url": args.amqp_url, "queues": args.queues,
                                   "concurrency": args.concurrency,
                                   "log_format": args.log_format}.items() if v is not None}
    settings = WorkerSettings(**overrides)
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    logging.getLogger("pika").setLevel(logging.WARNING)

    worker = Worker(load_app(args.app), settings)
    worker.install_signal_handlers()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
