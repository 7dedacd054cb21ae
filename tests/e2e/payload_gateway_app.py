"""The handler of the large payload e2e tests (served by a worker subprocess)."""

from __future__ import annotations

from typing import Any

from asynctask_worker import App

app = App("payloads-gateway")


@app.task("pl-echo")
def echo(request: Any) -> Any:
    """The request back as the result: a stored one (a ``Payload``) is stored again, same
    bytes and type; a JSON value as it came (stored when over the threshold)."""
    return request
