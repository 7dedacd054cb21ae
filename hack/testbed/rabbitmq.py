"""A private RabbitMQ node from Debian's ``rabbitmq-server`` package.

Own node name, AMQP port, distribution port, epmd port, data and log directories, so it
never touches (or is touched by) a system-wide RabbitMQ. ``stop()`` ends the node and the
epmd it started, and removes its files.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.service import Service

RABBITMQ_BIN = Path(os.environ.get("ASYNCTASK_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


@dataclass
class RabbitMQ(Service):
    """A running private RabbitMQ node. Use as a context manager, or start()/stop()."""

    workdir: Path | None = None
    management: bool = False
    port: int = 0
    management_port: int = 0
    node: str = ""
    #: Where AMQP and the management API listen. Loopback, unless pods must reach the
    #: node: the in-cluster tests pass the test bed node's IP (then ``guest`` may log in
    #: from other addresses, which RabbitMQ refuses by default).
    address: str = "127.0.0.1"
    #: Set by a cluster (:mod:`testbed.rabbitmq_cluster`): an epmd port its nodes share (the
    #: cluster runs that epmd, so a node never ends it) and one Erlang cookie.
    epmd_port: int = 0
    cookie: str = ""
    _proc: subprocess.Popen[bytes] | None = None
    _env: dict[str, str] = field(default_factory=dict)
    _own_workdir: bool = False
    workdir_prefix: ClassVar[str] = "asynctask-rabbitmq-"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.address}:{self.port}/%2F"

    @property
    def pid(self) -> int | None:
        """The node's process (its tree holds the Erlang VM), None while stopped."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@{self.address}:{self.management_port}"

    def _prepare(self) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise RuntimeError(
                f"rabbitmq-server not found in {RABBITMQ_BIN}: install Debian's "
                "rabbitmq-server package (hack/install-deps.sh does)"
            )

    def _start(self, work: Path) -> None:
        self.launch(work)
        self.wait_ready()

    def launch(self, work: Path) -> None:
        """Start the node's process; :meth:`wait_ready` waits for it (a cluster starts its
        nodes at once, then waits for each)."""
        self.port = self.port or free_port()
        dist_port, epmd_port = free_port(), self.epmd_port or free_port()
        self.node = f"asynctask-{self.port}@localhost"
        if self.cookie:
            cookie = work / ".erlang.cookie"
            if cookie.exists():
                cookie.chmod(0o600)
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)
        loopback = "true" if self.address == "127.0.0.1" else "false"
        conf = [
            f"listeners.tcp.1 = {self.address}:{self.port}",
            f"loopback_users.guest = {loopback}",
            "log.console = false",
            "log.file.level = info",
        ]
        plugins = []
        if self.management:
            self.management_port = self.management_port or free_port()
            conf += [
                f"management.tcp.port = {self.management_port}",
                f"management.tcp.ip = {self.address}",
            ]
            plugins.append("rabbitmq_management")
        (work / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (work / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        self._env = {
            **os.environ,
            "HOME": str(work),  # the Erlang cookie is written here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_IP_ADDRESS": self.address,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONFIG_FILE": str(work / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
            "RABBITMQ_LOG_BASE": str(work / "log"),
            "RABBITMQ_PID_FILE": str(work / "rabbitmq.pid"),
        }
        log("rabbitmq", f"starting private node {self.node} on {self.address}:{self.port}")
        self._proc = spawn([str(RABBITMQ_BIN / "rabbitmq-server")], self._logfile, self._env)

    @property
    def _logfile(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "rabbitmq-server.log"

    def wait_ready(self, timeout: float = 90) -> None:
        assert self._proc is not None
        wait_until(
            f"RabbitMQ {self.node} to accept AMQP connections",
            self._amqp_ok,
            timeout,
            [("rabbitmq-server", self._proc, self._logfile)],
            interval=0.5,
        )
        log("rabbitmq", f"ready: amqp://{self.address}:{self.port}")

    def _amqp_ok(self) -> bool:
        import logging

        import pika

        quiet = logging.getLogger("pika")
        level, quiet.level = quiet.level, logging.CRITICAL  # refusals are expected here
        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1"))
            conn.close()
        finally:
            quiet.setLevel(level)
        return True

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run rabbitmqctl against this node."""
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    # broker restarts, as clients see them: same port, same data ------------------------

    def stop_node(self) -> None:
        """Stop the node but keep its port and data: ``start_node()`` brings it back."""
        if self._proc is not None:
            log("rabbitmq", f"stopping {self.node}")
            stop(self._proc, timeout=20)
            self._proc = None
        if self._env and not self.epmd_port:
            # epmd was started for this node on its private port; end it too.
            subprocess.run(
                ["epmd", "-port", self._env["ERL_EPMD_PORT"], "-kill"],
                capture_output=True,
                check=False,
                env=self._env,
            )

    def kill(self) -> None:
        """SIGKILL the node (a crash: nothing is flushed, no goodbye to clients or peers);
        ``start_node()`` brings it back with its port and data."""
        if self._proc is not None:
            log("rabbitmq", f"SIGKILL {self.node}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(30)
            self._proc = None

    def start_node(self) -> None:
        """Start a node stopped with ``stop_node()`` again: same port, durable data kept."""
        if self._proc is not None:
            return
        if self.workdir is None:
            raise RuntimeError("start() the node first")
        self._start(self.workdir)

    def restart(self) -> None:
        """A broker restart: connections drop, durable queues and messages survive."""
        self.stop_node()
        self.start_node()

    def close_connections(self, vhost: str) -> None:
        """Close every client connection of a virtual host, as an operator of the broker
        would (``rabbitmqctl close_all_connections``): clients see a connection lost."""
        self.ctl("close_all_connections", "-p", vhost, "closed by a test")

    def connection_names(self, vhost: str) -> list[str]:
        """The names clients gave their open connections to a virtual host (the
        ``connection_name`` client property), sorted."""
        out = self.ctl("list_connections", "vhost", "client_properties", "--formatter", "json")
        names = []
        for conn in json.loads(out.stdout or "[]"):
            props = {p[0]: p[2] for p in conn.get("client_properties") or []}
            if conn.get("vhost") == vhost and "connection_name" in props:
                names.append(str(props["connection_name"]))
        return sorted(names)

    # virtual hosts: one per test keeps tests (and other clients of the node) apart --------

    def vhost_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@{self.address}:{self.port}/{urllib.parse.quote(vhost, safe='')}"

    def add_vhost(self, vhost: str) -> str:
        """Create a virtual host the guest user may use fully; returns its AMQP URL."""
        if self.management:
            self._management("PUT", f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}")
            self._management(
                "PUT",
                f"/api/permissions/{urllib.parse.quote(vhost, safe='')}/guest",
                {"configure": ".*", "write": ".*", "read": ".*"},
            )
        else:
            self.ctl("add_vhost", vhost)
            self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.vhost_url(vhost)

    def delete_vhost(self, vhost: str) -> None:
        """Delete a virtual host and everything in it (no error if it is gone)."""
        if self.management:
            try:
                self._management("DELETE", f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}")
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
        else:
            self.ctl("delete_vhost", vhost, check=False)

    def queue(self, vhost: str, name: str) -> dict[str, Any]:
        """A queue as the management API shows it: type, durable, arguments, messages (its
        counts for quorum queues lag a few seconds behind)."""
        path = "/api/queues/{}/{}".format(*(urllib.parse.quote(x, safe="") for x in (vhost, name)))
        info: dict[str, Any] = self._management("GET", path)
        return info

    def _management(self, method: str, path: str, body: object = None) -> Any:
        """One call of the management API at :attr:`management_url` (its credentials sent
        as Basic auth); the JSON answer, or None for an empty one."""
        parts = urllib.parse.urlsplit(self.management_url)
        base = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl().rstrip("/")
        auth = ":".join(urllib.parse.unquote(x or "") for x in (parts.username, parts.password))
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def _stop(self) -> None:
        self.stop_node()
