"""``asynctask-gateway``: serve the HTTP API until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from asynctask_gateway.app import make_app, make_gateway
from asynctask_gateway.kube import Kube
from asynctask_gateway.settings import GatewaySettings, S3Settings
from asynctask_worker._entrypoint import version_line
from asynctask_worker.logs import TEXT_FORMAT, JsonFormatter

log = logging.getLogger("asynctask_gateway")


def formatter(log_format: str) -> logging.Formatter:
    """The gateway's JSON lines, or text."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def setup_logging(settings: GatewaySettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(settings: GatewaySettings) -> None:
    s3 = S3Settings()
    gw = make_gateway(settings, Kube.from_environment(), s3)
    # handler_cancellation: a client that hangs up ends its wait or stream at once.
    runner = web.AppRunner(make_app(gw), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.address, settings.port)
    await site.start()
    ports = [s.getsockname()[1] for s in site._server.sockets]  # type: ignore[union-attr]
    log.info(
        "serving on http://%s:%s (namespaces: %s)",
        settings.address,
        ports[0],
        ",".join(settings.namespaces) or "all",
    )
    if s3.enabled:
        log.info("large payloads: bucket %s at %s", s3.bucket, s3.endpoint)
    else:
        log.info("large payloads: off (ASYNCTASK_S3_ENDPOINT is not set)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="asynctask-gateway",
        description="HTTP gateway for AsyncTasks; configured by ASYNCTASK_GATEWAY_* variables.",
    )
    parser.add_argument("--version", action="version", version=version_line("asynctask-gateway"))
    parser.add_argument("--port", type=int, help="overrides ASYNCTASK_GATEWAY_PORT")
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    if args.port is not None:
        settings = settings.model_copy(update={"port": args.port})
    setup_logging(settings)
    asyncio.run(serve(settings))
