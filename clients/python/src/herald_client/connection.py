"""The protocol state of one client connection, without I/O (PROTOCOL.md sections 5, 6).

:class:`ProtocolState` builds the frames a client sends and consumes the bytes it
receives. It keeps the client-side state table (``CLIENT_TABLE`` in section 6), matches
every answer to the request it answers, and queues deliveries. The blocking and the
asyncio client drive it with their own sockets, so both behave identically.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import codec, limits
from .codec import FrameType
from .errors import (
    ConnectionClosed,
    ErrorCode,
    HeraldError,
    ProtocolViolation,
    ServerError,
    UsageError,
    server_error,
)
from .model import (
    Delivery,
    ErrorFrame,
    Event,
    HelloOk,
    Pong,
    RecoveryDone,
    Role,
    ServerFrame,
    SessionLimits,
    StatusReply,
    Stored,
    Subscribed,
)


class ClientState(enum.Enum):
    """Where the conversation is, from the client's side."""

    CONNECTED = "connected"
    """connected, no hello sent yet (not in section 6's table)"""
    AWAIT_HELLO_OK = "await_hello_ok"
    READY = "ready"
    AWAIT_SUBSCRIBED = "await_subscribed"
    SUBSCRIBED = "subscribed"
    LEAVING = "leaving"
    """``Goodbye`` sent: answers to earlier requests may still come, then the close.
    Section 6 calls this ``Closed``, but section 5 promises those answers."""
    CLOSED = "closed"


_S = ClientState
_OK = "ok"
_CLOSE = "close"
_SEE_CODE = "see code"

# Section 6, client side: which server frames are valid in which client state, and the
# state each moves to. LEAVING accepts the answers that section 5 says follow a Goodbye;
# deliveries still in the daemon's buffer are dropped there (they are unsettled, so a
# durable subscription gets them again).
_CLIENT_TABLE: dict[ClientState, dict[FrameType, object]] = {
    _S.AWAIT_HELLO_OK: {FrameType.HELLO_OK: _S.READY, FrameType.ERROR: _SEE_CODE},
    _S.READY: {
        FrameType.STORED: _OK,
        FrameType.ERROR: _SEE_CODE,
        FrameType.STATUS_REPLY: _OK,
        FrameType.PONG: _OK,
    },
    _S.AWAIT_SUBSCRIBED: {
        FrameType.STORED: _OK,
        FrameType.ERROR: _SEE_CODE,
        FrameType.SUBSCRIBED: _S.SUBSCRIBED,
        FrameType.PONG: _OK,
    },
    _S.SUBSCRIBED: {
        FrameType.STORED: _OK,
        FrameType.ERROR: _SEE_CODE,
        FrameType.DELIVER: _OK,
        FrameType.RECOVERY_DONE: _OK,
        FrameType.PONG: _OK,
    },
    _S.LEAVING: {
        FrameType.STORED: _OK,
        FrameType.SUBSCRIBED: _OK,
        FrameType.ERROR: _SEE_CODE,
        FrameType.DELIVER: _OK,
        FrameType.RECOVERY_DONE: _OK,
        FrameType.STATUS_REPLY: _OK,
        FrameType.PONG: _OK,
    },
}


@dataclass(slots=True)
class _PendingPublish:
    correlation: int
    batch_events: int | None
    """``None`` for a single ``Publish``; the event count of a ``PublishBatch``."""


PublishResult = Stored | HeraldError
StatusResult = str | HeraldError


class ProtocolState:
    """One connection's protocol state: frames out, bytes in, answers matched.

    Methods named after a request return the frame to send (and, where the answer is
    matched by number, that number); nothing is written by this class. After
    :meth:`receive`, the ``*_result`` methods tell whether an answer arrived.
    """

    def __init__(self) -> None:
        self.state: ClientState = ClientState.CONNECTED
        self.role: Role | None = None
        self.hello_ok: HelloOk | None = None
        self.subscribed: Subscribed | None = None
        self.session: SessionLimits = SessionLimits()
        self.failure: HeraldError | None = None
        """Why the connection can no longer be used, once it cannot."""
        self.deliveries: deque[Delivery | RecoveryDone] = deque()
        """Deliveries (and ``RecoveryDone``) received, in order, not yet taken."""
        self.pipelined: deque[int] = deque()
        """Correlations of ``send_publish`` calls whose answer the caller has not read."""
        self._reader = codec.FrameReader()
        self._next_correlation = 1
        self._next_token = 1
        self._next_status_id = 1
        self._unanswered_publishes: deque[_PendingPublish] = deque()
        self._publish_results: dict[int, PublishResult] = {}
        self._unanswered_pings: set[int] = set()
        self._pong_tokens: set[int] = set()
        self._unanswered_statuses: deque[int] = deque()
        self._status_results: dict[int, StatusResult] = {}
        self._abandoned: set[tuple[str, int]] = set()
        self._subscribe_failure: HeraldError | None = None

    # --- requests -------------------------------------------------------------------

    @property
    def unanswered_requests(self) -> int:
        """Requests sent whose answer has not arrived (section 10.6 limits these)."""
        return (
            len(self._unanswered_publishes)
            + len(self._unanswered_pings)
            + len(self._unanswered_statuses)
        )

    def _usable(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.state in (ClientState.LEAVING, ClientState.CLOSED):
            raise UsageError("the connection is closing (goodbye was sent)")

    def _after_hello(self) -> None:
        self._usable()
        if self.state in (ClientState.CONNECTED, ClientState.AWAIT_HELLO_OK):
            raise UsageError("say hello first: the hello must be the first frame")

    def hello(self, role: Role, client_name: str) -> bytes:
        """The ``Hello`` frame; moves to ``AwaitHelloOk``."""
        self._usable()
        if self.state is not ClientState.CONNECTED:
            raise UsageError("hello was already sent on this connection")
        frame = codec.encode_hello(role, client_name)
        self.role = Role(role)
        self.state = ClientState.AWAIT_HELLO_OK
        return frame

    def _correlation(self) -> int:
        correlation = self._next_correlation
        # 0 means "no trustworthy correlation" in an Error (section 7): never use it.
        self._next_correlation = correlation % limits.U64_MAX + 1
        return correlation

    def publish(self, event: Event) -> tuple[int, bytes]:
        """A ``Publish`` frame and its correlation."""
        self._after_hello()
        correlation = self._next_correlation
        frame = codec.encode_publish(correlation, event, self.session)
        self._correlation()
        self._unanswered_publishes.append(_PendingPublish(correlation, None))
        return correlation, frame

    def publish_batch(self, events: Sequence[Event]) -> tuple[int, bytes]:
        """A ``PublishBatch`` frame and its correlation."""
        self._after_hello()
        correlation = self._next_correlation
        frame = codec.encode_publish_batch(correlation, events, self.session)
        self._correlation()
        self._unanswered_publishes.append(_PendingPublish(correlation, len(events)))
        return correlation, frame

    def subscribe(
        self,
        name: str,
        patterns: Sequence[str],
        *,
        min_severity: int = limits.SEVERITY_MAX,
        window_events: int = limits.WINDOW_EVENTS_DEFAULT,
        ack_deadline_ms: int = 0,
        max_deliveries: int = 0,
        automatic_recovery: bool = False,
        group: bool = False,
    ) -> bytes:
        """The ``Subscribe`` frame; moves to ``AwaitSubscribed``."""
        self._after_hello()
        if self.state is not ClientState.READY:
            raise UsageError("a connection has at most one subscription (PROTOCOL.md section 5)")
        frame = codec.encode_subscribe(
            name,
            patterns,
            min_severity=min_severity,
            window_events=window_events,
            ack_deadline_ms=ack_deadline_ms,
            max_deliveries=max_deliveries,
            automatic_recovery=automatic_recovery,
            group=group,
        )
        self.state = ClientState.AWAIT_SUBSCRIBED
        self._subscribe_failure = None
        return frame

    def settle(self, frame: bytes) -> bytes:
        """Check a settling frame (``Confirm``, ``Nak``, ...) may be sent; return it."""
        self._after_hello()
        return frame

    def status(self) -> tuple[int, bytes]:
        """A ``Status`` frame and the number its answer will be matched by."""
        return self._status_like(codec.encode_status())

    def admin(self, request: Mapping[str, object]) -> tuple[int, bytes]:
        """An ``Admin`` frame and the number its answer will be matched by."""
        return self._status_like(codec.encode_admin(request))

    def _status_like(self, frame: bytes) -> tuple[int, bytes]:
        self._after_hello()
        status_id = self._next_status_id
        self._next_status_id += 1
        self._unanswered_statuses.append(status_id)
        return status_id, frame

    def ping(self) -> tuple[int, bytes]:
        """A ``Ping`` frame and its token."""
        self._after_hello()
        token = self._next_token
        frame = codec.encode_ping(token)
        self._next_token = token % limits.U64_MAX + 1
        self._unanswered_pings.add(token)
        return token, frame

    def goodbye(self) -> bytes:
        """The ``Goodbye`` frame; moves to ``Leaving``."""
        if self.failure is not None:
            raise self.failure
        if self.state in (ClientState.LEAVING, ClientState.CLOSED):
            raise UsageError("goodbye was already sent")
        frame = codec.encode_goodbye()
        self.state = ClientState.LEAVING
        return frame

    def abandon(self, kind: str, number: int) -> None:
        """Forget a request whose caller stopped waiting (a timeout, a cancellation).

        ``kind`` is ``"publish"``, ``"ping"`` or ``"status"``. Its answer is dropped when
        it comes.
        """
        if kind == "ping" and number in self._pong_tokens:
            self._pong_tokens.discard(number)
        elif kind == "publish" and number in self._publish_results:
            del self._publish_results[number]
        elif kind == "status" and number in self._status_results:
            del self._status_results[number]
        else:
            self._abandoned.add((kind, number))

    # --- answers --------------------------------------------------------------------

    def publish_result(self, correlation: int) -> PublishResult | None:
        """Take the answer to publish ``correlation`` if it arrived."""
        return self._publish_results.pop(correlation, None)

    def pong_received(self, token: int) -> bool:
        """Take the ``Pong`` for ``token`` if it arrived."""
        if token in self._pong_tokens:
            self._pong_tokens.discard(token)
            return True
        return False

    def status_result(self, status_id: int) -> StatusResult | None:
        """Take the answer to status (or admin) request ``status_id`` if it arrived."""
        return self._status_results.pop(status_id, None)

    def subscribe_result(self) -> Subscribed | None:
        """The ``Subscribed`` answer once it arrived; raises if the subscribe failed."""
        if self._subscribe_failure is not None:
            raise self._subscribe_failure
        return self.subscribed

    # --- receiving ------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Consume bytes from the server; answers and deliveries become available.

        Raises:
            ProtocolViolation: the server broke the protocol. The connection is failed.
        """
        if self.failure is not None and self.state is ClientState.CLOSED:
            return
        self._reader.feed(data)
        try:
            while self.state is not ClientState.CLOSED:
                raw = self._reader.next_frame()
                if raw is None:
                    return
                self._dispatch(raw[0], raw[1])
        except ProtocolViolation as violation:
            self.fail(violation)
            raise

    def receive_eof(self) -> None:
        """The server closed the connection."""
        if self.state is ClientState.CLOSED:
            return
        if self.state is ClientState.LEAVING:
            self.fail(ConnectionClosed("the connection was closed after goodbye"))
        else:
            self.fail(ConnectionClosed("the herald daemon closed the connection"))
        if self._reader.buffered_bytes and not isinstance(self.failure, ServerError):
            self.failure = ProtocolViolation(
                f"the daemon closed the connection in the middle of a frame "
                f"({self._reader.buffered_bytes} bytes of it received)"
            )

    def fail(self, failure: HeraldError) -> None:
        """Mark the connection unusable; every request still waiting gets ``failure``."""
        if self.failure is None:
            self.failure = failure
        self.state = ClientState.CLOSED
        for pending in self._unanswered_publishes:
            self._deliver_publish_result(pending.correlation, self.failure)
        self._unanswered_publishes.clear()
        for status_id in self._unanswered_statuses:
            self._store_status(status_id, self.failure)
        self._unanswered_statuses.clear()
        self._unanswered_pings.clear()
        if self.subscribed is None and self._subscribe_failure is None:
            self._subscribe_failure = self.failure

    def _dispatch(self, frame_type: FrameType, body: bytes) -> None:
        transition = _CLIENT_TABLE.get(self.state, {}).get(frame_type, _CLOSE)
        if transition == _CLOSE:
            raise ProtocolViolation(
                f"server sent {frame_type.name} while the client is in state "
                f"{self.state.value}, which version 1 does not allow (PROTOCOL.md section 6)"
            )
        frame = codec.decode_server_frame(frame_type, body)
        self._apply(frame)
        if isinstance(transition, ClientState) and self.state is not ClientState.CLOSED:
            self.state = transition

    def _apply(self, frame: ServerFrame) -> None:
        match frame:
            case HelloOk():
                self._apply_hello_ok(frame)
            case Stored():
                self._apply_stored(frame)
            case ErrorFrame():
                self._apply_error(frame)
            case Subscribed():
                if self.state is ClientState.AWAIT_SUBSCRIBED:
                    self.subscribed = frame
            case Delivery() | RecoveryDone():
                if self.state is not ClientState.LEAVING:
                    self.deliveries.append(frame)
            case StatusReply():
                self._apply_status_reply(frame)
            case Pong():
                self._apply_pong(frame)

    def _apply_hello_ok(self, frame: HelloOk) -> None:
        if frame.version != limits.PROTOCOL_VERSION:
            raise ProtocolViolation(
                f"server chose protocol version {frame.version}, outside this client's "
                f"range {limits.PROTOCOL_VERSION}..={limits.PROTOCOL_VERSION}"
            )
        self.hello_ok = frame
        self.session = self.session.lowered_by(frame)

    def _next_unanswered_publish(self, what: str, correlation: int) -> _PendingPublish:
        if not self._unanswered_publishes:
            raise ProtocolViolation(f"server sent {what} (correlation {correlation}) for no publish")
        pending = self._unanswered_publishes[0]
        if pending.correlation != correlation:
            raise ProtocolViolation(
                f"server sent {what} for correlation {correlation}, but the oldest "
                f"unanswered publish is {pending.correlation} (answers come in order, section 10.1)"
            )
        return self._unanswered_publishes.popleft()

    def _apply_stored(self, frame: Stored) -> None:
        pending = self._next_unanswered_publish("Stored", frame.correlation)
        if pending.batch_events is None and frame.count != 1:
            raise ProtocolViolation(f"server answered a Publish with Stored count {frame.count}")
        if pending.batch_events is not None and frame.count > pending.batch_events:
            raise ProtocolViolation(
                f"server answered a batch of {pending.batch_events} with Stored count {frame.count}"
            )
        self._deliver_publish_result(pending.correlation, frame)

    def _deliver_publish_result(self, correlation: int, result: PublishResult) -> None:
        if ("publish", correlation) in self._abandoned:
            self._abandoned.discard(("publish", correlation))
            return
        self._publish_results[correlation] = result

    def _store_status(self, status_id: int, result: StatusResult) -> None:
        if ("status", status_id) in self._abandoned:
            self._abandoned.discard(("status", status_id))
            return
        self._status_results[status_id] = result

    def _apply_error(self, frame: ErrorFrame) -> None:
        error = server_error(frame.code, frame.message, frame.correlation)
        if frame.correlation != 0:
            pending = self._next_unanswered_publish("Error", frame.correlation)
            self._deliver_publish_result(pending.correlation, error)
        elif frame.code == ErrorCode.FORBIDDEN:
            self._apply_forbidden(error)
        elif not error.closes:
            raise ProtocolViolation(
                f"server sent a non-closing Error {error.code_name} without a correlation"
            )
        if error.closes:
            self.fail(error)

    def _apply_forbidden(self, error: ServerError) -> None:
        """A ``forbidden`` without a correlation answers the hello, the subscribe, or
        the oldest status request, whichever is waiting (answers come in order)."""
        if self.state is ClientState.AWAIT_HELLO_OK:
            # This client says hello once: a refused role ends the connection.
            self.fail(error)
        elif self.state is ClientState.AWAIT_SUBSCRIBED:
            # Section 6: a refused Subscribe leaves the connection as it was.
            self._subscribe_failure = error
            self.state = ClientState.READY
        elif self._unanswered_statuses:
            self._store_status(self._unanswered_statuses.popleft(), error)
        else:
            raise ProtocolViolation("server sent forbidden without a correlation, for no request")

    def _apply_status_reply(self, frame: StatusReply) -> None:
        if not self._unanswered_statuses:
            raise ProtocolViolation("server sent StatusReply, but no Status or Admin was sent")
        self._store_status(self._unanswered_statuses.popleft(), frame.json_text)

    def _apply_pong(self, frame: Pong) -> None:
        if frame.token not in self._unanswered_pings:
            raise ProtocolViolation(f"server sent Pong with token {frame.token}, for no ping")
        self._unanswered_pings.discard(frame.token)
        if ("ping", frame.token) in self._abandoned:
            self._abandoned.discard(("ping", frame.token))
        else:
            self._pong_tokens.add(frame.token)
