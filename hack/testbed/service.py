"""What the test bed's services (:class:`~testbed.ControlPlane`, :class:`~testbed.RabbitMQ`,
:class:`~testbed.RabbitMQCluster`) share: a work folder of their own unless they are given
one, a start that stops what it started when it fails, a stop that ends the processes and
removes the folder it made (kept when ``ASYNCTASK_KEEP_TESTBED`` is set), and the ``with``
block."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self


class Service:
    """A mixin for a dataclass with the fields ``workdir`` and ``_own_workdir``: it
    supplies ``_start`` (everything the service starts, in ``workdir``) and ``_stop``
    (ends every process it started; called after a failed start too)."""

    workdir: Path | None
    _own_workdir: bool
    #: The prefix of the work folder made when none is given.
    workdir_prefix: ClassVar[str] = "asynctask-"

    def start(self) -> Self:
        self._prepare()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=self.workdir_prefix))
            self._own_workdir = True
        try:
            self._start(self.workdir)
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self) -> None:
        """What must be there before a work folder is made (binaries found or built)."""

    def _start(self, work: Path) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop()
        if (
            self._own_workdir
            and self.workdir is not None
            and not os.environ.get("ASYNCTASK_KEEP_TESTBED")
        ):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
