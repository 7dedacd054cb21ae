"""Large payloads from the client's side (docs/payloads.md): what can be uploaded as a
request, and the checks a download makes. Bytes are streamed in chunks both ways, never
read whole (a request from a path or a binary file; a result to a path or a file), and a
download is hashed as it is written: bytes that do not match the ref's sha256 (or its size)
raise :class:`~asynctask_client.errors.PayloadChecksumMismatch`, and a download to a path
leaves no file behind then.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from asynctask_client.errors import PayloadChecksumMismatch
from asynctask_worker.payloads import PayloadRef

#: Bytes read or written at a time.
CHUNK = 1024 * 1024
#: What ``submit(request=...)`` uploads instead of sending as JSON.
BINARY_TYPES = (bytes, bytearray, memoryview, Path)
#: Where a download may go: a path, or a binary file open for writing.
Target = str | os.PathLike[str] | IO[bytes]


def is_upload(request: Any) -> bool:
    """Whether ``submit`` uploads ``request`` (bytes, a Path, a binary file) rather than
    sending it as the JSON request."""
    return isinstance(request, BINARY_TYPES) or (
        hasattr(request, "read") and not isinstance(request, io.TextIOBase)
    )


class Upload:
    """A request to upload: its size (Content-Length is required) and its chunks, hashed as
    they are read so the gateway's answer can be checked against what was sent."""

    def __init__(self, source: Any) -> None:
        self.sha256 = hashlib.sha256()
        self._data: memoryview | None = None
        self._path: Path | None = None
        self._file: BinaryIO | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            self._data = memoryview(source).cast("B")
            self.size = self._data.nbytes
        elif isinstance(source, Path):
            self._path = source
            self.size = source.stat().st_size
        else:  # a binary file: from where it stands to its end
            self._file = source
            start = source.tell()
            self.size = source.seek(0, io.SEEK_END) - start
            source.seek(start)

    def chunks(self) -> Iterator[bytes]:
        if self._data is not None:
            for at in range(0, self.size, CHUNK):
                yield self._hashed(bytes(self._data[at : at + CHUNK]))
        elif self._path is not None:
            with self._path.open("rb") as file:
                yield from self._read(file)
        elif self._file is not None:
            yield from self._read(self._file)

    def _read(self, file: BinaryIO) -> Iterator[bytes]:
        left = self.size
        while left > 0 and (chunk := file.read(min(CHUNK, left))):
            left -= len(chunk)
            yield self._hashed(chunk)

    def _hashed(self, chunk: bytes) -> bytes:
        self.sha256.update(chunk)
        return chunk

    def check(self, ref: PayloadRef) -> PayloadRef:
        """``ref`` if it names the bytes sent (size and sha256), else the mismatch."""
        sent = self.sha256.hexdigest()
        if ref.size != self.size or ref.sha256 != sent:
            raise PayloadChecksumMismatch(
                f"the gateway stored {ref.size} bytes with sha256 {ref.sha256}; "
                f"{self.size} bytes with sha256 {sent} were sent"
            )
        return ref


def digest_of(header: str | None) -> str | None:
    """The sha256 (hex) of an RFC 9530 ``Repr-Digest`` header, if it names one."""
    for member in (header or "").split(","):
        name, _, value = member.strip().partition("=")
        if name.strip().lower() == "sha-256" and value.startswith(":") and value.endswith(":"):
            try:
                return base64.b64decode(value[1:-1], validate=True).hex()
            except ValueError:
                return None
    return None


class Checked:
    """A download's bytes, hashed and counted as they are written."""

    def __init__(self, ref: PayloadRef, announced: str | None = None) -> None:
        self.ref = ref
        self.announced = announced
        self.sha256 = hashlib.sha256()
        self.count = 0

    def write(self, sink: Callable[[bytes], object], chunk: bytes) -> None:
        self.count += len(chunk)
        if self.count > self.ref.size:
            raise PayloadChecksumMismatch(
                f"the result is larger than its ref's {self.ref.size} bytes"
            )
        self.sha256.update(chunk)
        sink(chunk)

    def verify(self) -> None:
        if self.count != self.ref.size:
            raise PayloadChecksumMismatch(
                f"the result ended after {self.count} of its {self.ref.size} bytes"
            )
        got = self.sha256.hexdigest()
        if got != self.ref.sha256 or self.announced not in (None, self.ref.sha256):
            raise PayloadChecksumMismatch(
                f"the result's sha256 is {got}; its ref says {self.ref.sha256}"
            )


def into(target: Target, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` with a binary file for ``target``: the file itself, or a temporary
    file beside the path, renamed to it only once ``write`` returned (no partial file)."""
    if not isinstance(target, str | os.PathLike):
        write(target)
        return
    path = Path(target)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
