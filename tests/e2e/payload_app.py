"""Handlers of large payloads for tests/e2e/test_payloads_worker.py (served by a worker
subprocess). Marker files under $PAYLOAD_MARKERS, named ``<namespace>.<name>.<what>``,
tell the test what a handler did, and let the test tell a handler to go on."""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from asynctask_worker import App, Blob, Payload, TaskContext

app = App("payloads")

CHUNK = 1024 * 1024
#: What ``shift`` does to each byte: add one, modulo 256 (bytes.translate: C speed).
SHIFT = bytes((b + 1) % 256 for b in range(256))


def marker(ctx: TaskContext, what: str) -> Path:
    return Path(os.environ["PAYLOAD_MARKERS"]) / f"{ctx.namespace}.{ctx.name}.{what}"


@app.task("shift")
def shift(request: Payload, ctx: TaskContext) -> Blob:
    """Streams the request through a byte translation into a file: the result differs from
    the request, and neither is ever in memory whole."""
    out = Path(tempfile.mkdtemp(prefix="shift-")) / "out"
    done = 0
    with request.open() as src, out.open("wb") as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk.translate(SHIFT))
            done += len(chunk)
            ctx.progress(100 * done // max(request.size, 1))
    return Blob(out, content_type="application/x-shifted")


@app.task("echo")
def echo(request: Payload) -> Blob:
    """The request's own file, streamed back as the result (a binary file handed over)."""
    return Blob(request.open(), content_type=request.content_type)


@app.task("json-echo")
def json_echo(request: Any) -> Any:
    """A stored JSON request arrives parsed; the same value back (stored: it is large)."""
    return {"echo": request}


@app.task("held")
def held(request: dict[str, int], ctx: TaskContext) -> bytes:
    """Waits for the test's go (after it stopped the store), then returns binary data."""
    marker(ctx, "started").write_text(str(ctx.attempt))
    go = marker(ctx, "go")
    while not go.exists():
        if ctx.wait_cancelled(0.05):
            return b""
    return b"\x01" * request["size"]


class _Generated(io.RawIOBase):
    """``size`` deterministic bytes, seekable; on the first attempt it marks when half is
    read, then holds still, so that the test kills the worker mid-upload."""

    def __init__(self, size: int, half: Path | None) -> None:
        self.size, self.pos, self.half = size, 0, half

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.pos)
        buffer[:n] = generated_block(self.pos, n)
        self.pos += n
        if self.half is not None and self.pos >= self.size // 2:
            self.half.touch()
            # Hold the PUT open half sent: the test kills the worker meanwhile (bounded, so
            # a test that fails first leaves no thread behind for long).
            time.sleep(120)
        return n


_PERIOD = bytes(range(251))


def generated_block(offset: int, n: int) -> bytes:
    """The generated stream's bytes at ``offset``: byte ``p`` is ``p % 251`` (the test
    computes the same)."""
    start = offset % len(_PERIOD)
    return (_PERIOD * ((start + n) // len(_PERIOD) + 1))[start : start + n]


@app.task("generated")
def generated(request: dict[str, int], ctx: TaskContext) -> Blob:
    """A generated result of ``size`` bytes; held half uploaded on attempt 1 (the kill
    test)."""
    half = marker(ctx, "half") if ctx.attempt == 1 else None
    return Blob(io.BufferedReader(_Generated(request["size"], half)), "application/x-gen")
