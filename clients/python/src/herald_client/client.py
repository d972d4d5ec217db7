"""The blocking client: one Unix-socket connection to the herald daemon.

A :class:`Client` is not thread-safe: use it from one thread at a time (or one client
per thread).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import codec, limits
from ._common import (
    DEFAULT,
    DEFAULT_TIMEOUT_S,
    TimeoutArg,
    DEFAULT_WINDOW_EVENTS,
    connect_failed,
    make_event,
    parse_admin_answer,
    parse_status,
    patterns_list,
    resolve_socket_path,
    salvage_after_write_failure,
)
from .connection import ClientState, ProtocolState
from .errors import ConnectionClosed, HeraldError, ProtocolViolation, Timeout, UsageError
from .model import Delivery, Event, HelloOk, RecoveryDone, Role, Severity, Stored, Subscribed

T = TypeVar("T")


class Client:
    """A blocking connection to herald.

    Typical use::

        with Client.connect(role=Role.PRODUCER, client_name="fsd") as client:
            seq = client.publish("fs.vol1.error", b"disk full", severity=Severity.ERR)

    Every method that waits takes its time limit from ``timeout`` (seconds, ``None`` =
    wait forever), which defaults to the one given to :meth:`connect`.
    """

    def __init__(self, sock: socket.socket, socket_path: str, timeout: float | None) -> None:
        """Wrap a connected socket; most callers want :meth:`connect` instead."""
        self._sock: socket.socket | None = sock
        self._protocol = ProtocolState()
        self.socket_path: str = socket_path
        """The socket this client connected to."""
        self.timeout: float | None = timeout
        """Default time limit of each request, in seconds (``None``: no limit)."""

    # --- connection -----------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        role: Role | None = None,
        client_name: str = "",
        timeout: float | None = DEFAULT_TIMEOUT_S,
    ) -> Client:
        """Connect to the daemon's socket and, if ``role`` is given, say hello.

        Args:
            socket_path: the daemon's socket; default ``herald-data/herald.sock`` under
                the current directory.
            role: when given, :meth:`hello` is called with it and ``client_name``.
            client_name: who the client is (the default ``source`` of its events).
            timeout: default time limit of each request, in seconds.

        Raises:
            ConnectFailed: the socket does not exist or nobody listens on it.
        """
        path = resolve_socket_path(socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as error:
            sock.close()
            raise connect_failed(path, error) from None
        client = cls(sock, path, timeout)
        if role is not None:
            try:
                client.hello(role, client_name)
            except BaseException:
                client.close()
                raise
        return client

    def hello(self, role: Role, client_name: str = "", *, timeout: TimeoutArg = DEFAULT) -> HelloOk:
        """Send ``Hello`` and wait for ``HelloOk`` (PROTOCOL.md section 5).

        Raises:
            ServerError: ``unsupported_version`` (the connection is closed).
        """
        self._send(self._protocol.hello(role, client_name))
        deadline = self._deadline(timeout)
        return self._wait_request(lambda: self._protocol.hello_ok, deadline, "HelloOk")

    @property
    def hello_ok(self) -> HelloOk | None:
        """The server's ``HelloOk`` (version, node_id, limits), once received."""
        return self._protocol.hello_ok

    @property
    def closed(self) -> bool:
        """Whether the connection can no longer be used."""
        return self._sock is None or self._protocol.state is ClientState.CLOSED

    def goodbye(self, *, timeout: TimeoutArg = DEFAULT) -> None:
        """Send ``Goodbye``, take the answers to earlier requests, and wait for the close.

        Answers to publishes sent with :meth:`send_publish` stay readable with
        :meth:`read_stored`. Deliveries not yet read are dropped: on a durable
        subscription they are unsettled and come again on its next connection.
        """
        try:
            self._send(self._protocol.goodbye())
            deadline = self._deadline(timeout)
            while self._protocol.state is not ClientState.CLOSED:
                if not self._read_some(deadline):
                    raise Timeout("the daemon did not close the connection after goodbye")
        finally:
            self.close()

    def close(self) -> None:
        """Close the socket at once, without ``Goodbye``. Safe to call twice."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._protocol.state is not ClientState.CLOSED:
            self._protocol.fail(ConnectionClosed("the client closed the connection"))

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Say goodbye when the block ended normally; otherwise just close."""
        if exc_type is None and not self.closed:
            try:
                self.goodbye()
            except HeraldError:
                pass
        self.close()

    # --- publishing -----------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes = b"",
        *,
        severity: int = Severity.INFO,
        source: str = "",
        flags: int = 0,
        key: bytes | str = b"",
        timeout: TimeoutArg = DEFAULT,
    ) -> int:
        """Publish one event and return its sequence number once it is durable.

        Args:
            topic: e.g. ``"fs.vol1.error"`` (PROTOCOL.md section 8).
            payload: the event's body, at most 65 536 bytes.
            severity: 0 (emerg) ..= 7 (debug); :class:`Severity`.
            source: who produced it; empty = this connection's client name.
            flags: application-defined ``u16``.
            key: idempotency key (at most 64 bytes): publishing again with the same key
                and source returns the original sequence number and stores nothing.

        Raises:
            EncodeError: a field breaks a limit or grammar; nothing was sent.
            FullError: the log had no room; not stored; the connection stays open.
            ServerError: any other refusal (the connection is then closed).
        """
        event = make_event(topic, payload, severity, source, flags, key)
        correlation = self._send_publish_frame(self._protocol.publish(event))
        return self._wait_publish(correlation, self._deadline(timeout)).seq

    def publish_batch(self, events: Sequence[Event], *, timeout: TimeoutArg = DEFAULT) -> Stored:
        """Publish 1..=256 events stored as a whole, and return the one ``Stored``.

        The events' sequence numbers lie in ``first_seq..=last_seq``; an event whose key
        repeats an earlier one (remembered, or in this batch) keeps the earlier number.
        """
        correlation = self._send_publish_frame(self._protocol.publish_batch(events))
        return self._wait_publish(correlation, self._deadline(timeout))

    def send_publish(
        self,
        topic: str,
        payload: bytes = b"",
        *,
        severity: int = Severity.INFO,
        source: str = "",
        flags: int = 0,
        key: bytes | str = b"",
    ) -> int:
        """Send a publish without waiting; return its correlation.

        Read the answers with :meth:`read_stored`, in the order the publishes were sent.
        Past :data:`~herald_client.limits.PIPELINED_REQUESTS_MAX` unanswered requests the
        client reads answers before writing more (PROTOCOL.md 10.6), keeping them for
        :meth:`read_stored`.
        """
        event = make_event(topic, payload, severity, source, flags, key)
        correlation = self._send_publish_frame(self._protocol.publish(event))
        self._protocol.pipelined.append(correlation)
        return correlation

    def send_publish_batch(self, events: Sequence[Event]) -> int:
        """Send a batch without waiting; return its correlation (see :meth:`send_publish`)."""
        correlation = self._send_publish_frame(self._protocol.publish_batch(events))
        self._protocol.pipelined.append(correlation)
        return correlation

    def read_stored(self, *, timeout: TimeoutArg = DEFAULT) -> Stored:
        """The answer to the oldest :meth:`send_publish` not yet read.

        Raises:
            UsageError: no pipelined publish is waiting to be read.
            FullError: that publish was not stored (the next one may have been).
            ServerError: it was refused and the connection closed.
        """
        if not self._protocol.pipelined:
            raise UsageError("read_stored: no publish sent with send_publish is unread")
        correlation = self._protocol.pipelined[0]
        stored = self._wait_publish(correlation, self._deadline(timeout), abandon=False)
        self._protocol.pipelined.popleft()
        return stored

    @property
    def unread_publishes(self) -> int:
        """Publishes sent with :meth:`send_publish` whose answer was not read yet."""
        return len(self._protocol.pipelined)

    # --- subscribing ----------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        patterns: str | Sequence[str],
        *,
        min_severity: int = Severity.DEBUG,
        window_events: int = DEFAULT_WINDOW_EVENTS,
        ack_deadline_ms: int = 0,
        max_deliveries: int = 0,
        automatic_recovery: bool = False,
        group: bool = False,
        timeout: TimeoutArg = DEFAULT,
    ) -> Subscribed:
        """Start this connection's subscription and wait for ``Subscribed``.

        Args:
            name: durable subscription name (``[A-Za-z0-9_.-]``, at most 64 bytes), or
                ``""`` for a live-only subscription.
            patterns: 1..=16 patterns; an event matching any of them is delivered.
            min_severity: deliver events with ``severity <= min_severity`` (7 = all).
            window_events: most events in flight (delivered, not settled), 1..=4096.
            ack_deadline_ms: redeliver an event not settled this long after delivery;
                0 = the daemon's default (``--ack-deadline``).
            max_deliveries: deliveries before an event becomes a dead letter;
                0 = the daemon's default (``--max-deliveries``).
            automatic_recovery: leave recovery mode as soon as every replayed event is
                settled, without :meth:`recovered` (PROTOCOL.md 10.4).
            group: join the durable subscription's work-queue group (PROTOCOL.md
                10.3): each event goes to one of the connections that subscribed so.

        Raises:
            ServerError: e.g. ``name_in_use`` (another connection holds the name) or
                ``not_permitted`` (a producer or control connection).
        """
        frame = self._protocol.subscribe(
            name,
            patterns_list(patterns),
            min_severity=min_severity,
            window_events=window_events,
            ack_deadline_ms=ack_deadline_ms,
            max_deliveries=max_deliveries,
            automatic_recovery=automatic_recovery,
            group=group,
        )
        self._send(frame)
        return self._wait_request(
            self._protocol.subscribe_result, self._deadline(timeout), "Subscribed"
        )

    @property
    def subscribed(self) -> Subscribed | None:
        """The ``Subscribed`` answer (mode, pending_events), once received."""
        return self._protocol.subscribed

    def next_delivery(self, timeout: float | None = None) -> Delivery | RecoveryDone | None:
        """The next delivery, or ``None`` when none came within ``timeout`` seconds.

        :class:`RecoveryDone` comes in the stream after the last replayed event of a
        recovering subscription (PROTOCOL.md 10.4). ``timeout=None`` waits forever.

        Raises:
            ConnectionClosed, ServerError, ProtocolViolation: the connection ended;
                deliveries received before that are returned first.
        """
        self._require_subscription()
        deadline = None if timeout is None else time.monotonic() + timeout
        queue = self._protocol.deliveries
        while not queue:
            if self._protocol.failure is not None:
                raise self._protocol.failure
            if not self._read_some(deadline):
                return None
        return queue.popleft()

    def deliveries(self, timeout: float | None = None) -> Iterator[Delivery | RecoveryDone]:
        """Iterate over deliveries; stop when none comes within ``timeout`` seconds."""
        while (item := self.next_delivery(timeout)) is not None:
            yield item

    def confirm(self, seq: int) -> None:
        """Event ``seq`` is processed (``Confirm`` of one event)."""
        self.confirm_range(seq, seq)

    def confirm_range(self, first_seq: int, last_seq: int) -> None:
        """Every event delivered with ``first_seq <= seq <= last_seq`` is processed."""
        self._send(self._protocol.settle(codec.encode_confirm(first_seq, last_seq)))

    def nak(self, seq: int, delay_ms: int = 0) -> None:
        """Redeliver ``seq`` no earlier than ``delay_ms`` (at most 3 600 000) from now."""
        self._send(self._protocol.settle(codec.encode_nak(seq, delay_ms)))

    def working(self, seq: int) -> None:
        """Still processing ``seq``: restart its redelivery deadline."""
        self._send(self._protocol.settle(codec.encode_working(seq)))

    def reject(self, seq: int) -> None:
        """``seq`` will never be processed: settle it (a durable subscription keeps it as
        a dead letter)."""
        self._send(self._protocol.settle(codec.encode_reject(seq)))

    def recovered(self) -> None:
        """This subscriber finished its own recovery: new events may follow (10.4)."""
        self._send(self._protocol.settle(codec.encode_recovered()))

    # --- control --------------------------------------------------------------------

    def status(self, *, timeout: TimeoutArg = DEFAULT) -> dict[str, Any]:
        """The daemon's status document, parsed (a control connection only)."""
        return self._parsed(parse_status, self._status_like(self._protocol.status(), timeout))

    def admin(self, request: Mapping[str, object], *, timeout: TimeoutArg = DEFAULT) -> dict[str, Any]:
        """Send an operator request (e.g. ``{"op": "dead.list"}``) and return the answer.

        Raises:
            AdminError: the daemon answered ``{"error": ...}``; the connection stays open.
        """
        return self._parsed(parse_admin_answer, self._status_like(self._protocol.admin(request), timeout))

    def ping(self, *, timeout: TimeoutArg = DEFAULT) -> float:
        """Send ``Ping``, wait for its ``Pong``; return the round trip in seconds."""
        deadline = self._deadline(timeout)
        self._make_room(deadline)
        token, frame = self._protocol.ping()
        started = time.monotonic()
        self._send(frame)
        self._wait_numbered(
            lambda: True if self._protocol.pong_received(token) else None, deadline, "ping", token
        )
        return time.monotonic() - started

    # --- internals ------------------------------------------------------------------

    def _deadline(self, timeout: TimeoutArg) -> float | None:
        if timeout is DEFAULT:
            timeout = self.timeout
        return None if timeout is None else time.monotonic() + timeout

    def _parsed(self, parse: Callable[[str], dict[str, Any]], text: str) -> dict[str, Any]:
        try:
            return parse(text)
        except ProtocolViolation as violation:
            self._fail(violation)
            raise

    def _require_subscription(self) -> None:
        state = self._protocol.state
        if self._protocol.deliveries or state in (
            ClientState.AWAIT_SUBSCRIBED,
            ClientState.SUBSCRIBED,
        ):
            return
        if self._protocol.failure is not None:
            raise self._protocol.failure
        raise UsageError("no subscription on this connection: call subscribe() first")

    def _status_like(self, request: tuple[int, bytes], timeout: TimeoutArg) -> str:
        status_id, frame = request
        deadline = self._deadline(timeout)
        self._send(frame)
        return self._wait_numbered(
            lambda: self._protocol.status_result(status_id), deadline, "status", status_id
        )

    def _send_publish_frame(self, request: tuple[int, bytes]) -> int:
        correlation, frame = request
        self._send(frame)
        # Reading now, not before, keeps the correlation order the state already fixed.
        self._make_room(self._deadline(DEFAULT))
        return correlation

    def _wait_publish(self, correlation: int, deadline: float | None, abandon: bool = True) -> Stored:
        take = lambda: self._protocol.publish_result(correlation)  # noqa: E731
        if abandon:
            return self._wait_numbered(take, deadline, "publish", correlation)
        return self._wait_request(take, deadline, "Stored")

    def _wait_numbered(self, take: Callable[[], T | BaseException | None], deadline: float | None, kind: str, number: int) -> T:
        try:
            return self._wait_request(take, deadline, kind)
        except Timeout:
            self._protocol.abandon(kind, number)
            raise

    def _wait_request(self, take: Callable[[], T | BaseException | None], deadline: float | None, what: str) -> T:
        """Read until ``take`` returns an answer; raise it if it is an exception."""
        while True:
            result = take()
            if result is not None:
                if isinstance(result, BaseException):
                    raise result
                return result
            if self._protocol.failure is not None:
                raise self._protocol.failure
            if not self._read_some(deadline):
                raise Timeout(f"no {what} from the daemon at {self.socket_path} in time")

    def _make_room(self, deadline: float | None) -> None:
        while self._protocol.unanswered_requests >= limits.PIPELINED_REQUESTS_MAX:
            if self._protocol.failure is not None:
                return  # the waiting requests already carry the failure
            if not self._read_some(deadline):
                raise Timeout("the daemon did not answer earlier requests in time")

    def _send(self, frame: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise self._protocol.failure or ConnectionClosed("the client closed the connection")
        try:
            sock.settimeout(self.timeout)
            sock.sendall(frame)
        except OSError as error:
            # A frame may be half written: the stream cannot be used any more.
            salvage_after_write_failure(sock, self._protocol)
            self._fail(ConnectionClosed(f"writing to herald at {self.socket_path} failed: {error}"))
            raise self._failure() from error

    def _read_some(self, deadline: float | None) -> bool:
        """Read once and feed the protocol state; ``False`` if the deadline passed first."""
        sock = self._sock
        if sock is None:
            raise self._protocol.failure or ConnectionClosed("the client closed the connection")
        # Past the deadline the read still takes what has already arrived (timeout 0
        # is a poll), so a short timeout never misses a delivery that is waiting.
        sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        try:
            data = sock.recv(limits.RECV_CHUNK_BYTES)
        except (TimeoutError, BlockingIOError):
            return False
        except ConnectionResetError:
            # Linux reports a peer that closed with our frames unread as a reset, after
            # the bytes it sent first have been read: the same end as EOF.
            data = b""
        except OSError as error:
            self._fail(ConnectionClosed(f"reading from herald at {self.socket_path} failed: {error}"))
            return True
        if not data:
            self._protocol.receive_eof()
        else:
            try:
                self._protocol.receive(data)
            except ProtocolViolation:
                pass  # recorded as the failure; the caller raises it
        if self._protocol.state is ClientState.CLOSED:
            self._close_socket()
        return True

    def _failure(self) -> HeraldError:
        failure = self._protocol.failure
        assert failure is not None, "a failed connection records why"
        return failure

    def _fail(self, failure: HeraldError) -> None:
        self._protocol.fail(failure)
        self._close_socket()

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
