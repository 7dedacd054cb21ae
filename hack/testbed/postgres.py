"""A private PostgreSQL server from Debian's ``postgresql-15`` package.

``initdb`` makes a cluster in a temporary folder, the server listens on a free port of
127.0.0.1 (and a Unix socket in that folder only), with ``fsync`` off: a test bed's data
need not survive a power cut, and the tests' many small commits go faster. ``stop()`` ends
the server and removes its files. ``initdb`` and the server refuse to run as root: as
root, both run as the ``postgres`` user the package creates, and the folder is given to it.

Each test gets a database of its own (:meth:`PostgreSQL.create_database`), as each gets a
RabbitMQ virtual host.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.service import Service

POSTGRES_BIN = Path(os.environ.get("ASYNCTASK_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
#: The superuser initdb makes (trust authentication on loopback: a test bed only).
SUPERUSER = "asynctask"
#: Server settings of the test bed: loopback only, no fsync, a socket in the work folder.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
}
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def server_args(
    bin_dir: Path,
    data: Path,
    port: int,
    socket_dir: Path,
    settings: dict[str, str] | None = None,
) -> list[str]:
    """The ``postgres`` command line: the data folder, the port, the socket folder and
    :data:`SETTINGS` (``settings`` overriding or adding to them) as ``-c name=value``."""
    args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(socket_dir)]
    for name, value in {**SETTINGS, **(settings or {})}.items():
        args += ["-c", f"{name}={value}"]
    return args


def as_user(args: list[str], uid: int) -> list[str]:
    """``args`` as the ``postgres`` user when run by root (initdb and the server refuse
    root), else unchanged."""
    return ["runuser", "-u", "postgres", "--", *args] if uid == 0 else args


def database_url(port: int, database: str, user: str = SUPERUSER) -> str:
    """A libpq URL of a database on the test bed's server."""
    return f"postgresql://{user}@127.0.0.1:{port}/{database}"


def checked_name(database: str) -> str:
    """A database name the test bed creates: lower-case letters, digits and ``_``, at most
    63 characters (PostgreSQL's limit), so it needs no quoting."""
    if not _DB_NAME.match(database):
        raise ValueError(f"not a test-bed database name: {database!r}")
    return database


@dataclass
class PostgreSQL(Service):
    """A running private PostgreSQL server. Use as a context manager, or start()/stop().

    Given a ``workdir`` that already holds a cluster (a benchmark's, kept between runs),
    it starts that cluster rather than making a new one; ``settings`` override or add to
    :data:`SETTINGS`."""

    workdir: Path | None = None
    port: int = 0
    settings: dict[str, str] | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _own_workdir: bool = False
    workdir_prefix: ClassVar[str] = "asynctask-postgres-"

    @property
    def url(self) -> str:
        """The URL of the server's ``postgres`` database (the superuser's)."""
        return database_url(self.port, "postgres")

    def _prepare(self) -> None:
        if not (POSTGRES_BIN / "initdb").exists():
            raise RuntimeError(
                f"initdb not found in {POSTGRES_BIN}: install Debian's postgresql-15 "
                "package (hack/install-deps.sh does)"
            )

    @property
    def _data(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "data"

    @property
    def _logfile(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "postgres.log"

    def _start(self, work: Path) -> None:
        if os.getuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(work, entry.pw_uid, entry.pw_gid)
        self.port = self.port or free_port()
        if (self._data / "PG_VERSION").exists():
            self.start_server()
            return
        initdb = [str(POSTGRES_BIN / "initdb"), "-D", str(self._data), "-A", "trust"]
        initdb += ["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"]
        with self._logfile.open("ab") as out:
            subprocess.run(
                as_user(initdb, os.getuid()), stdout=out, stderr=subprocess.STDOUT, check=True
            )
        self.start_server()

    def start_server(self) -> None:
        """Start the server (again, after :meth:`stop_server`): same port, same data."""
        if self._proc is not None:
            return
        assert self.workdir is not None
        log("postgres", f"starting a private server on 127.0.0.1:{self.port}")
        args = server_args(POSTGRES_BIN, self._data, self.port, self.workdir, self.settings)
        self._proc = spawn(as_user(args, os.getuid()), self._logfile)
        wait_until(
            f"PostgreSQL on port {self.port} to accept connections",
            self._accepts,
            60,
            [("postgres", self._proc, self._logfile)],
            interval=0.2,
        )
        log("postgres", f"ready: {self.url}")

    def _accepts(self) -> bool:
        self.psql("postgres", "SELECT 1")
        return True

    def stop_server(self) -> None:
        """Stop the server (a fast shutdown: clients are disconnected) but keep its port
        and data: :meth:`start_server` brings it back."""
        if self._proc is None:
            return
        log("postgres", f"stopping the server on port {self.port}")
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGINT)  # fast shutdown
                self._proc.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                stop(self._proc, timeout=10)
        self._proc = None

    def psql(self, database: str, sql: str) -> str:
        """Run SQL with ``psql`` on a database of the server; its unaligned output."""
        psql = shutil.which("psql") or str(POSTGRES_BIN / "psql")
        url = database_url(self.port, database)
        done = subprocess.run(
            [psql, "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, database: str) -> str:
        """Create an empty database; returns its URL."""
        self.psql("postgres", f"CREATE DATABASE {checked_name(database)}")
        return database_url(self.port, database)

    def drop_database(self, database: str) -> None:
        """Drop a database, its open connections ended first (no error if it is gone)."""
        self.psql("postgres", f"DROP DATABASE IF EXISTS {checked_name(database)} WITH (FORCE)")

    def _stop(self) -> None:
        self.stop_server()
