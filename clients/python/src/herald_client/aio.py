"""The asyncio client: the same operations as :class:`~herald_client.Client`, awaited.

Several tasks may share one :class:`AsyncClient`: frames are written whole, in the order
the calls are made, and whichever task is waiting reads for all of them (answers are
matched to their requests, deliveries are queued in order).

Cancelling a call that waits for an answer (or its ``timeout``) leaves the connection
usable; the late answer is dropped. Cancelling a call while its frame is only partly
written (the socket's buffer was full) closes the connection, since the stream can no
longer be trusted.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import codec, limits
from ._common import (
    DEFAULT,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WINDOW_EVENTS,
    TimeoutArg,
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


class AsyncClient:
    """An asyncio connection to herald. See :class:`~herald_client.Client` for the
    meaning of each operation; here each is a coroutine.

    Typical use::

        async with await AsyncClient.connect(role=Role.PRODUCER, client_name="fsd") as client:
            seq = await client.publish("fs.vol1.error", b"disk full", severity=Severity.ERR)
    """

    def __init__(self, sock: socket.socket, socket_path: str, timeout: float | None) -> None:
        """Wrap a connected non-blocking socket; most callers want :meth:`connect`."""
        self._sock: socket.socket | None = sock
        self._loop = asyncio.get_running_loop()
        self._protocol = ProtocolState()
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._reads = 0
        self.socket_path: str = socket_path
        self.timeout: float | None = timeout

    # --- connection -----------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        role: Role | None = None,
        client_name: str = "",
        timeout: float | None = DEFAULT_TIMEOUT_S,
    ) -> AsyncClient:
        """Connect to the daemon's socket and, if ``role`` is given, say hello.

        Raises:
            ConnectFailed: the socket does not exist or nobody listens on it.
        """
        path = resolve_socket_path(socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_connect(sock, path)
        except OSError as error:
            sock.close()
            raise connect_failed(path, error) from None
        except BaseException:
            sock.close()
            raise
        client = cls(sock, path, timeout)
        if role is not None:
            try:
                await client.hello(role, client_name)
            except BaseException:
                client.close()
                raise
        return client

    async def hello(self, role: Role, client_name: str = "", *, timeout: TimeoutArg = DEFAULT) -> HelloOk:
        """Send ``Hello`` and wait for ``HelloOk``."""
        await self._send(self._protocol.hello(role, client_name))
        return await self._wait_request(lambda: self._protocol.hello_ok, timeout, "HelloOk")

    @property
    def hello_ok(self) -> HelloOk | None:
        """The server's ``HelloOk``, once received."""
        return self._protocol.hello_ok

    @property
    def closed(self) -> bool:
        """Whether the connection can no longer be used."""
        return self._sock is None or self._protocol.state is ClientState.CLOSED

    async def goodbye(self, *, timeout: TimeoutArg = DEFAULT) -> None:
        """Send ``Goodbye``, take the answers to earlier requests, wait for the close."""
        try:
            await self._send(self._protocol.goodbye())
            await self._wait_request(
                lambda: True if self._protocol.state is ClientState.CLOSED else None,
                timeout,
                "close after goodbye",
                closed_is_answer=True,
            )
        finally:
            self.close()

    def close(self) -> None:
        """Close the socket at once, without ``Goodbye``. Safe to call twice."""
        self._close_socket()
        if self._protocol.state is not ClientState.CLOSED:
            self._protocol.fail(ConnectionClosed("the client closed the connection"))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Say goodbye when the block ended normally; otherwise just close."""
        if exc_type is None and not self.closed:
            try:
                await self.goodbye()
            except HeraldError:
                pass
        self.close()

    # --- publishing -----------------------------------------------------------------

    async def publish(
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
        """Publish one event; return its sequence number once it is durable."""
        event = make_event(topic, payload, severity, source, flags, key)
        correlation = await self._send_publish_frame(self._protocol.publish(event))
        stored = await self._wait_numbered(
            lambda: self._protocol.publish_result(correlation), timeout, "publish", correlation
        )
        return stored.seq

    async def publish_batch(self, events: Sequence[Event], *, timeout: TimeoutArg = DEFAULT) -> Stored:
        """Publish 1..=256 events stored as a whole; return the one ``Stored``."""
        correlation = await self._send_publish_frame(self._protocol.publish_batch(events))
        return await self._wait_numbered(
            lambda: self._protocol.publish_result(correlation), timeout, "publish", correlation
        )

    async def send_publish(
        self,
        topic: str,
        payload: bytes = b"",
        *,
        severity: int = Severity.INFO,
        source: str = "",
        flags: int = 0,
        key: bytes | str = b"",
    ) -> int:
        """Send a publish without waiting for its answer; return its correlation."""
        event = make_event(topic, payload, severity, source, flags, key)
        correlation = await self._send_publish_frame(self._protocol.publish(event))
        self._protocol.pipelined.append(correlation)
        return correlation

    async def send_publish_batch(self, events: Sequence[Event]) -> int:
        """Send a batch without waiting for its answer; return its correlation."""
        correlation = await self._send_publish_frame(self._protocol.publish_batch(events))
        self._protocol.pipelined.append(correlation)
        return correlation

    async def read_stored(self, *, timeout: TimeoutArg = DEFAULT) -> Stored:
        """The answer to the oldest :meth:`send_publish` not yet read."""
        if not self._protocol.pipelined:
            raise UsageError("read_stored: no publish sent with send_publish is unread")
        correlation = self._protocol.pipelined[0]
        stored: Stored = await self._wait_request(
            lambda: self._protocol.publish_result(correlation), timeout, "Stored"
        )
        self._protocol.pipelined.popleft()
        return stored

    @property
    def unread_publishes(self) -> int:
        """Publishes sent with :meth:`send_publish` whose answer was not read yet."""
        return len(self._protocol.pipelined)

    # --- subscribing ----------------------------------------------------------------

    async def subscribe(
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
        """Start this connection's subscription; wait for ``Subscribed``."""
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
        await self._send(frame)
        return await self._wait_request(self._protocol.subscribe_result, timeout, "Subscribed")

    @property
    def subscribed(self) -> Subscribed | None:
        """The ``Subscribed`` answer, once received."""
        return self._protocol.subscribed

    async def next_delivery(self, timeout: float | None = None) -> Delivery | RecoveryDone | None:
        """The next delivery (or ``RecoveryDone``); ``None`` if none came in ``timeout`` s."""
        self._require_subscription()
        queue = self._protocol.deliveries
        try:
            await self._wait_request(lambda: True if queue else None, timeout, "delivery")
        except Timeout:
            return None
        return queue.popleft()

    async def deliveries(self, timeout: float | None = None) -> AsyncIterator[Delivery | RecoveryDone]:
        """Iterate over deliveries; stop when none comes within ``timeout`` seconds."""
        while (item := await self.next_delivery(timeout)) is not None:
            yield item

    async def confirm(self, seq: int) -> None:
        """Event ``seq`` is processed."""
        await self.confirm_range(seq, seq)

    async def confirm_range(self, first_seq: int, last_seq: int) -> None:
        """Every event delivered with ``first_seq <= seq <= last_seq`` is processed."""
        await self._send(self._protocol.settle(codec.encode_confirm(first_seq, last_seq)))

    async def nak(self, seq: int, delay_ms: int = 0) -> None:
        """Redeliver ``seq`` no earlier than ``delay_ms`` from now."""
        await self._send(self._protocol.settle(codec.encode_nak(seq, delay_ms)))

    async def working(self, seq: int) -> None:
        """Still processing ``seq``: restart its redelivery deadline."""
        await self._send(self._protocol.settle(codec.encode_working(seq)))

    async def reject(self, seq: int) -> None:
        """``seq`` will never be processed."""
        await self._send(self._protocol.settle(codec.encode_reject(seq)))

    async def recovered(self) -> None:
        """This subscriber finished its own recovery."""
        await self._send(self._protocol.settle(codec.encode_recovered()))

    # --- control --------------------------------------------------------------------

    async def status(self, *, timeout: TimeoutArg = DEFAULT) -> dict[str, Any]:
        """The daemon's status document, parsed (a control connection only)."""
        return self._parsed(parse_status, await self._status_like(self._protocol.status(), timeout))

    async def admin(self, request: Mapping[str, object], *, timeout: TimeoutArg = DEFAULT) -> dict[str, Any]:
        """An operator request and its answer; ``{"error": ...}`` raises ``AdminError``."""
        return self._parsed(
            parse_admin_answer, await self._status_like(self._protocol.admin(request), timeout)
        )

    async def ping(self, *, timeout: TimeoutArg = DEFAULT) -> float:
        """Send ``Ping``, wait for its ``Pong``; return the round trip in seconds."""
        await self._make_room()
        token, frame = self._protocol.ping()
        started = time.monotonic()
        await self._send(frame)
        await self._wait_numbered(
            lambda: True if self._protocol.pong_received(token) else None, timeout, "ping", token
        )
        return time.monotonic() - started

    # --- internals ------------------------------------------------------------------

    def _seconds(self, timeout: TimeoutArg) -> float | None:
        return self.timeout if timeout is DEFAULT else timeout

    def _parsed(self, parse: Callable[[str], dict[str, Any]], text: str) -> dict[str, Any]:
        try:
            return parse(text)
        except ProtocolViolation as violation:
            self._fail(violation)
            raise

    def _require_subscription(self) -> None:
        if self._protocol.deliveries or self._protocol.state in (
            ClientState.AWAIT_SUBSCRIBED,
            ClientState.SUBSCRIBED,
        ):
            return
        if self._protocol.failure is not None:
            raise self._protocol.failure
        raise UsageError("no subscription on this connection: call subscribe() first")

    async def _status_like(self, request: tuple[int, bytes], timeout: TimeoutArg) -> str:
        status_id, frame = request
        await self._send(frame)
        return await self._wait_numbered(
            lambda: self._protocol.status_result(status_id), timeout, "status", status_id
        )

    async def _send_publish_frame(self, request: tuple[int, bytes]) -> int:
        correlation, frame = request
        await self._send(frame)
        await self._make_room()
        return correlation

    async def _make_room(self) -> None:
        """Read answers while too many are unread at the server (PROTOCOL.md 10.6)."""
        await self._wait_request(
            lambda: True
            if self._protocol.unanswered_requests < limits.PIPELINED_REQUESTS_MAX
            or self._protocol.failure is not None
            else None,
            DEFAULT,
            "answers to earlier requests",
        )

    async def _wait_numbered(
        self, take: Callable[[], T | BaseException | None], timeout: TimeoutArg, kind: str, number: int
    ) -> T:
        try:
            return await self._wait_request(take, timeout, kind)
        except (Timeout, asyncio.CancelledError):
            self._protocol.abandon(kind, number)
            raise

    async def _wait_request(
        self,
        take: Callable[[], T | BaseException | None],
        timeout: TimeoutArg,
        what: str,
        *,
        closed_is_answer: bool = False,
    ) -> T:
        """Read (taking turns with other waiting tasks) until ``take`` gives an answer."""
        try:
            async with asyncio.timeout(self._seconds(timeout)):
                while True:
                    result = take()
                    if result is not None:
                        if isinstance(result, BaseException):
                            raise result
                        return result
                    if self._protocol.failure is not None and not closed_is_answer:
                        raise self._protocol.failure
                    await self._read_turn()
        except TimeoutError:
            raise Timeout(f"no {what} from the daemon at {self.socket_path} in time") from None

    async def _read_turn(self) -> None:
        """Read once, unless another task read while this one waited for its turn."""
        reads_before = self._reads
        async with self._read_lock:
            if self._reads != reads_before:
                return  # someone else read: look at the answers again first
            sock = self._sock
            if sock is None:
                raise self._protocol.failure or ConnectionClosed("the client closed the connection")
            try:
                data = await self._loop.sock_recv(sock, limits.RECV_CHUNK_BYTES)
            except ConnectionResetError:
                data = b""  # a peer that closed with our frames unread: the end, as EOF
            except OSError as error:
                self._fail(ConnectionClosed(f"reading from herald at {self.socket_path} failed: {error}"))
                data = None
            self._reads += 1
            if data == b"":
                self._protocol.receive_eof()
            elif data is not None:
                try:
                    self._protocol.receive(data)
                except ProtocolViolation:
                    pass  # recorded as the failure; the waiter raises it
            if self._protocol.state is ClientState.CLOSED:
                self._close_socket()

    async def _send(self, frame: bytes) -> None:
        async with self._write_lock:
            sock = self._sock
            if sock is None:
                raise self._protocol.failure or ConnectionClosed("the client closed the connection")
            try:
                await self._loop.sock_sendall(sock, frame)
            except OSError as error:
                salvage_after_write_failure(sock, self._protocol)
                self._fail(ConnectionClosed(f"writing to herald at {self.socket_path} failed: {error}"))
                raise self._failure() from error
            except asyncio.CancelledError:
                # Part of the frame may be written: the stream cannot be used any more.
                self._fail(ConnectionClosed("a write was cancelled part-way; the connection is closed"))
                raise

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
