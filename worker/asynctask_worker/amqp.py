"""One way to hold a blocking pika connection: open on demand, close quietly, reconnect.

Four threads talk to RabbitMQ over a ``pika.BlockingConnection`` of their own (pika
connections are not thread-safe): the worker's consumer and its status publisher, the
operator's broker thread and its autoscaler's depth reader. They share this module, so
that they reconnect alike and report an outage alike:

* one WARNING when the connection is lost (or cannot be made), with the cause;
* DEBUG for every further failed attempt during the same outage;
* one INFO when the connection is back, with how long it was away.

pika itself logs every failed attempt at ERROR, with a traceback; those loggers are
quietened (:func:`quiet_pika`), because the outage is reported here, once, by the code
that knows what the connection was for. Public, because the operator uses it too: it
lives in the SDK, which the operator already depends on for the wire contract.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import pika
import pika.exceptions

from asynctask_worker.backoff import Backoff, describe

#: What a lost or refused connection raises: pika's errors and the socket's.
BROKER_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)

#: pika's loggers that report each failed connection attempt or lost socket at ERROR.
_PIKA_PER_ATTEMPT = (
    "pika.adapters.base_connection",
    "pika.adapters.blocking_connection",
    "pika.adapters.utils.connection_workflow",
    "pika.adapters.utils.io_services_utils",
)


def quiet_pika() -> None:
    """Only CRITICAL from pika's per-attempt loggers: :class:`Link` reports outages once."""
    for name in _PIKA_PER_ATTEMPT:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def split_urls(value: str) -> list[str]:
    """The URLs of ``ASYNCTASK_AMQP_URL`` / ``ASYNCTASK_WORKER_AMQP_URL``: one ``amqp://``
    URL, or the nodes of one cluster separated by commas (a comma inside a URL, e.g. in a
    password, is written ``%2C``). Blanks around them are ignored."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise ValueError("no AMQP URL given")
    return urls


def parameters(
    url: str,
    *,
    heartbeat: int | None = None,
    attempts: int | None = None,
    timeout: float | None = None,
) -> list[pika.URLParameters]:
    """Connection parameters, one per URL of ``url`` (see :func:`split_urls`), with the
    knobs the project sets. Every URL must name the same virtual host: they are nodes of
    one cluster, and the queues the project declares live in that virtual host."""
    nodes = []
    for one in split_urls(url):
        params = pika.URLParameters(one)
        if heartbeat is not None:
            params.heartbeat = heartbeat
        if attempts is not None:
            params.connection_attempts = attempts
        if timeout is not None:
            params.socket_timeout = params.stack_timeout = timeout
        nodes.append(params)
    vhosts = {p.virtual_host for p in nodes}
    if len(vhosts) > 1:
        raise ValueError(f"the AMQP URLs name different virtual hosts: {sorted(vhosts)}")
    return nodes


def node_name(params: pika.ConnectionParameters) -> str:
    """``host:port`` of a node, for logs (never the credentials)."""
    return f"{params.host}:{params.port}"


class Link:
    """One blocking connection, opened on demand; ``epoch`` counts connections made.

    Only the thread that owns the link may use the connection, except for pika's
    ``add_callback_threadsafe``. A delivery remembers the epoch it came on: after a
    reconnect its ack is moot (the broker redelivers it), so it is dropped.

    With several nodes (a cluster), ``open()`` tries them in turn, starting after the
    node whose connection was lost last, so a reconnect goes to a survivor first rather
    than waiting on the node that just failed. Quorum queues live on every node: any
    node serves every queue.
    """

    def __init__(
        self,
        params: pika.ConnectionParameters | Sequence[pika.ConnectionParameters],
        *,
        name: str,
        log: logging.Logger,
    ) -> None:
        nodes = [params] if isinstance(params, pika.ConnectionParameters) else list(params)
        if not nodes:
            raise ValueError("a link needs at least one node's connection parameters")
        for node in nodes:  # RabbitMQ's management UI and API show whose connection it is
            node.client_properties = {**(node.client_properties or {}), "connection_name": name}
        self.nodes = nodes
        self.name = name
        self._log = log
        self.connection: pika.BlockingConnection | None = None
        self.epoch = 0
        self.node: pika.ConnectionParameters | None = None  # the node connected to last
        self._first = 0  # the index of the node tried first
        self._down_since: float | None = None
        self._connected_once = False
        quiet_pika()

    @property
    def params(self) -> pika.ConnectionParameters:
        """The first node's parameters (every node's name the same virtual host)."""
        return self.nodes[0]

    @property
    def is_open(self) -> bool:
        return self.connection is not None and bool(self.connection.is_open)

    def open(self) -> pika.BlockingConnection:
        """The open connection, or a new one (raises one of :data:`BROKER_ERRORS`)."""
        if self.connection is not None and self.connection.is_open:
            return self.connection
        self.connection = self._connect()
        self.epoch += 1
        self._connected_once = True
        return self.connection

    def serving(self) -> None:
        """The session on the new connection is set up: the outage (if any) is over.

        Told here rather than when the connection opens: just after a restart a node
        accepts connections before its queues are back (``NOT_FOUND - home node ... is
        down``), and a session that fails while setting up is the same outage, not a
        second one."""
        if self._down_since is not None:
            self._log.info(
                "%s: reconnected to RabbitMQ after %.1fs (%s)",
                self.name,
                time.monotonic() - self._down_since,
                node_name(self.node or self.nodes[self._first]),
            )
            self._down_since = None

    def _connect(self) -> pika.BlockingConnection:
        """A connection to the first node that takes one, in turn from ``_first``."""
        error: BaseException | None = None
        for i in range(len(self.nodes)):
            index = (self._first + i) % len(self.nodes)
            try:
                connection = pika.BlockingConnection(self.nodes[index])
            except BROKER_ERRORS as exc:
                error = exc
                continue
            self._first = index
            self.node = self.nodes[index]
            return connection
        assert error is not None
        raise error

    def lost(self, exc: BaseException) -> None:
        """The connection failed (or could not be made): close it; report the outage once.

        A lost connection's node is tried last next time."""
        if self.connection is not None:
            self._first = (self._first + 1) % len(self.nodes)
        self.close()
        if self._down_since is not None:
            self._log.debug("%s: still no RabbitMQ (%s)", self.name, describe(exc))
            return
        self._down_since = time.monotonic()
        what = "lost RabbitMQ" if self._connected_once else "cannot reach RabbitMQ"
        where = (
            node_name(self.node)
            if self.node is not None and self._connected_once
            else (", ".join(node_name(p) for p in self.nodes))
        )
        self._log.warning(
            "%s: %s (%s) at %s; reconnecting with backoff", self.name, what, describe(exc), where
        )

    def close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(*BROKER_ERRORS):
                conn.close()


def _nothing() -> None:
    """Queued by :func:`wake`: the I/O loop returns, and its thread looks at its work."""


def wake(connection: pika.BlockingConnection | None) -> bool:
    """Make the thread serving ``connection`` leave its I/O loop (from any thread): True
    if the wake-up was queued, False with no connection or a broken one."""
    if connection is None:
        return False
    try:
        connection.add_callback_threadsafe(_nothing)
    except BROKER_ERRORS:
        return False
    return True


def run_connected(
    link: Link,
    session: Callable[[pika.BlockingConnection], None],
    *,
    keep_going: Callable[[], bool],
    max_delay: float,
    on_lost: Callable[[], object] = lambda: None,
    wait: Callable[[float], object] = time.sleep,
) -> None:
    """Run ``session`` on an open connection while ``keep_going()``; reconnect when lost.

    ``session`` calls ``link.serving()`` once it is set up (declared, consuming), which
    ends the outage in the log.

    ``session`` returns when its work is done (``keep_going()`` is then checked again)
    or raises one of :data:`BROKER_ERRORS` when the connection fails: ``on_lost`` runs,
    the outage is reported, and the next attempt waits a doubling delay, up to
    ``max_delay``. The link is left as it is at the end: the caller may still need it
    (a graceful shutdown acks over it), and closes it.
    """
    backoff = Backoff(max_delay)
    while keep_going():
        try:
            connection = link.open()
            backoff.reset()
            session(connection)
        except BROKER_ERRORS as exc:
            on_lost()
            if not keep_going():
                link.close()
                return
            link.lost(exc)
            wait(backoff.next())
