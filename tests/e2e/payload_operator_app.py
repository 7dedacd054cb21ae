"""The handler of tests/e2e/test_payloads_operator.py (served by a worker subprocess): a
large binary result generated as it is streamed, so the worker holds none of it whole."""

from __future__ import annotations

import io
from typing import Any

from asynctask_worker import App, Blob

app = App("payloads-operator")

#: One MiB of a fixed pattern; the result is this, repeated and cut to the asked size.
_BLOCK = bytes(range(256)) * 4096


class _Pattern(io.RawIOBase):
    """``size`` bytes of :data:`_BLOCK` repeated, seekable (the SDK learns the size)."""

    def __init__(self, size: int) -> None:
        self.size, self.pos = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self.pos)
        done = 0
        while done < n:
            start = (self.pos + done) % len(_BLOCK)
            take = min(n - done, len(_BLOCK) - start)
            view[done : done + take] = _BLOCK[start : start + take]
            done += take
        self.pos += n
        return n


@app.task("generate")
def generate(request: dict[str, int]) -> Blob:
    """``request["size"]`` bytes of the pattern, stored as the task's result."""
    return Blob(io.BufferedReader(_Pattern(request["size"])), "application/x-pattern")
