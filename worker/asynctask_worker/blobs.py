"""Large binary data in and out of a handler, without holding it in memory.

* :class:`Payload` is a stored request as a handler receives it when its content type is
  not JSON: the worker streamed the object to a file on local disk (checking its sha256)
  before calling the handler. Read it with :meth:`Payload.open` (a binary file), or
  :meth:`Payload.read` when it is small. The file is removed when the attempt ends.
* :class:`Blob` is a result to be stored as is: a file path or a binary file, streamed to
  object storage by one PUT, never read into memory whole. Returning ``bytes`` stores them
  too (as ``application/octet-stream``); returning the :class:`Payload` stores it back.

Both need object storage configured on the operator (docs/payloads.md): the operator hands
the worker presigned URLs scoped to the task's objects; the worker holds no credentials.

.. code-block:: python

    @app.task("thumbnail")
    def thumbnail(image: Payload) -> Blob:
        out = Path(tempfile.mkdtemp()) / "thumb.png"
        with image.open() as src:
            render_thumbnail(src, out)
        return Blob(out, content_type="image/png")
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from asynctask_worker.payloads import BINARY_CONTENT_TYPE, PayloadRef

__all__ = ["Blob", "Payload"]


class Payload:
    """A stored request, downloaded to local disk and checked (a handler's first argument).

    Its file lives until the attempt ends (after the result was stored), so a handler can
    return the payload itself, or a :class:`Blob` of its path, to store it as the result.
    """

    def __init__(self, path: str | os.PathLike[str], ref: PayloadRef) -> None:
        self.path = Path(path)
        #: The object it came from (``spec.requestRef``).
        self.ref = ref

    @property
    def size(self) -> int:
        return self.ref.size

    @property
    def content_type(self) -> str:
        return self.ref.content_type

    @property
    def sha256(self) -> str:
        """The hex sha256 of the bytes: checked while downloading."""
        return self.ref.sha256

    def open(self) -> BinaryIO:
        """The bytes as a binary file (read-only); close it when done (``with``)."""
        return self.path.open("rb")

    def read(self) -> bytes:
        """All the bytes in memory: for small payloads only."""
        return self.path.read_bytes()

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """A handler annotated with ``Payload`` gets one (an inline request is invalid)."""
        return core_schema.is_instance_schema(cls)

    def __repr__(self) -> str:
        return f"Payload(size={self.size}, content_type={self.content_type!r}, path={self.path})"


class Blob:
    """A result to store as bytes: a file path, or a binary file (read from where it stands).

    ``content_type`` is what readers get (``Content-Type`` of the stored object and
    ``status.resultRef.contentType``). A file handed over is closed once stored. A file
    that cannot seek (a pipe) is copied to a temporary file first, to learn its size: one
    PUT with a ``Content-Length`` is what a presigned URL accepts.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        content_type: str = BINARY_CONTENT_TYPE,
    ) -> None:
        if isinstance(source, str | os.PathLike):
            self.path: Path | None = Path(source)
            self.file: BinaryIO | None = None
        elif isinstance(source, io.TextIOBase):
            raise TypeError("Blob needs a binary file (open it with 'rb'), not a text file")
        elif hasattr(source, "read"):
            self.path = None
            self.file = source
        else:
            raise TypeError(f"Blob needs a path or a binary file, not {type(source).__name__}")
        if not content_type or len(content_type) > 255:
            raise ValueError("Blob's content_type must be 1 to 255 characters")
        self.content_type = content_type

    @classmethod
    def of(cls, payload: Payload) -> Blob:
        """A stored request, stored again as a result (same bytes, same type)."""
        return cls(payload.path, payload.content_type)

    def __repr__(self) -> str:
        return f"Blob({self.path or self.file!r}, content_type={self.content_type!r})"
