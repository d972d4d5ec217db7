"""Encoding and decoding of protocol version 1 frames (PROTOCOL.md sections 2 to 4).

Pure functions and a byte-stream reader, no I/O: the blocking and asyncio clients
share them. Encoders validate every field against section 11 (lowered by ``HelloOk``)
and raise :class:`~herald_client.errors.EncodeError` before anything is sent. Decoders
trust nothing: every length is checked against the bytes present and its limit, and
anything version 1 does not allow raises :class:`~herald_client.errors.ProtocolViolation`.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Callable, Mapping, Sequence

from . import grammar, limits
from .errors import EncodeError, LimitExceeded, ProtocolViolation
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
    SubscribedMode,
)


class FrameType(enum.IntEnum):
    """The ``frame_type`` byte (section 3)."""

    HELLO = 0x01
    PUBLISH = 0x02
    PUBLISH_BATCH = 0x03
    SUBSCRIBE = 0x04
    CONFIRM = 0x05
    NAK = 0x06
    WORKING = 0x07
    REJECT = 0x08
    RECOVERED = 0x09
    STATUS = 0x0A
    PING = 0x0B
    GOODBYE = 0x0C
    ADMIN = 0x0D
    HELLO_OK = 0x81
    STORED = 0x82
    ERROR = 0x83
    SUBSCRIBED = 0x84
    DELIVER = 0x85
    RECOVERY_DONE = 0x86
    STATUS_REPLY = 0x87
    PONG = 0x88

    @property
    def from_server(self) -> bool:
        """Server-to-client types have the high bit set."""
        return bool(self.value & 0x80)


_FRAME_HEADER = struct.Struct("<IBB")
_EVENT_HEADER = struct.Struct("<BBBBHI")
_HELLO = struct.Struct("<4sHHBB")
_CORRELATION = struct.Struct("<Q")
_BATCH_HEADER = struct.Struct("<QH")
_SUBSCRIBE = struct.Struct("<IIIHBBB")
_CONFIRM = struct.Struct("<QQ")
_NAK = struct.Struct("<QI")
_U64 = struct.Struct("<Q")
_HELLO_OK = struct.Struct("<HQII")
_STORED = struct.Struct("<QQQH")
_ERROR_HEADER = struct.Struct("<QHH")
_SUBSCRIBED = struct.Struct("<BQ")
_DELIVER_HEADER = struct.Struct("<QQHH")

assert _FRAME_HEADER.size == limits.FRAME_HEADER_BYTES
assert _EVENT_HEADER.size == limits.EVENT_HEADER_BYTES
assert _SUBSCRIBE.size == limits.SUBSCRIBE_FIXED_BYTES
assert _DELIVER_HEADER.size == limits.DELIVER_FIXED_BYTES
assert _BATCH_HEADER.size == limits.PUBLISH_BATCH_FIXED_BYTES

DELIVERY_FLAG_REDELIVERED = 0x0001
SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY = 0x0000_0001
SUBSCRIBE_FLAG_GROUP = 0x0000_0002


# --- encoding -------------------------------------------------------------------------


def _uint(value: int, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise EncodeError(f"{what} is {value}; it must be in {low}..={high}")
    return value


def _utf8(text: str, what: str, bytes_max: int) -> bytes:
    if not isinstance(text, str):
        raise EncodeError(f"{what} must be a str, not {type(text).__name__}")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise EncodeError(f"{what} cannot be encoded as UTF-8: {error}") from None
    if len(encoded) > bytes_max:
        raise LimitExceeded(f"{what} is {len(encoded)} bytes; at most {bytes_max} are allowed")
    return encoded


def _ascii(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise EncodeError(f"{what} must be a str, not {type(text).__name__}")
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise EncodeError(f"{what} {text!r} is not ASCII") from None


def _topic(topic: str) -> bytes:
    encoded = _ascii(topic, "topic")
    problem = grammar.topic_problem(encoded)
    if problem is not None:
        error = LimitExceeded if len(encoded) > limits.TOPIC_BYTES_MAX else EncodeError
        raise error(f"topic {topic!r} {problem} (PROTOCOL.md section 8)")
    return encoded


def _pattern(pattern: str) -> bytes:
    encoded = _ascii(pattern, "pattern")
    problem = grammar.pattern_problem(encoded)
    if problem is not None:
        error = LimitExceeded if len(encoded) > limits.PATTERN_BYTES_MAX else EncodeError
        raise error(f"pattern {pattern!r} {problem} (PROTOCOL.md section 8)")
    return encoded


def _bytes(value: bytes | bytearray | memoryview, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise EncodeError(f"{what} must be bytes, not {type(value).__name__}")


def _key(key: bytes | str) -> bytes:
    encoded = _utf8(key, "key", 1 << 30) if isinstance(key, str) else _bytes(key, "key")
    if len(encoded) > limits.KEY_BYTES_MAX:
        raise LimitExceeded(
            f"idempotency key is {len(encoded)} bytes; at most {limits.KEY_BYTES_MAX} are allowed"
        )
    return encoded


def encode_event(event: Event, session: SessionLimits = SessionLimits()) -> bytes:
    """The section 4.1 encoding of ``event``, after checking every field."""
    if not isinstance(event, Event):
        raise EncodeError(f"expected an Event, not {type(event).__name__}")
    severity = _uint(event.severity, 0, limits.SEVERITY_MAX, "severity")
    topic = _topic(event.topic)
    source = _utf8(event.source, "source", limits.SOURCE_BYTES_MAX)
    key = _key(event.key)
    flags = _uint(event.flags, 0, limits.EVENT_FLAGS_MAX, "flags")
    payload = _bytes(event.payload, "payload")
    if len(payload) > session.event_payload_bytes_max:
        raise LimitExceeded(
            f"payload is {len(payload)} bytes; at most {session.event_payload_bytes_max} are allowed"
        )
    header = _EVENT_HEADER.pack(severity, len(topic), len(source), len(key), flags, len(payload))
    return b"".join((header, topic, source, key, payload))


def encode_frame(
    frame_type: FrameType, body: bytes, session: SessionLimits = SessionLimits()
) -> bytes:
    """Frame ``body`` (section 2), refusing a frame over the session's size limit."""
    frame_bytes = limits.FRAME_HEADER_BYTES + len(body)
    if frame_bytes > session.frame_bytes_max:
        raise LimitExceeded(
            f"{frame_type.name} frame would be {frame_bytes} bytes; "
            f"frames are at most {session.frame_bytes_max} bytes"
        )
    return _FRAME_HEADER.pack(2 + len(body), frame_type, 0) + body


def encode_hello(
    role: Role,
    client_name: str = "",
    version_min: int = limits.PROTOCOL_VERSION,
    version_max: int = limits.PROTOCOL_VERSION,
) -> bytes:
    """A ``Hello`` frame (section 4.2)."""
    if isinstance(role, bool) or role not in Role._value2member_map_:
        raise EncodeError(f"role must be one of {[r.name.lower() for r in Role]}, not {role!r}")
    version_min = _uint(version_min, 1, limits.U16_MAX, "version_min")
    version_max = _uint(version_max, version_min, limits.U16_MAX, "version_max")
    name = _utf8(client_name, "client_name", limits.CLIENT_NAME_BYTES_MAX)
    body = _HELLO.pack(limits.HELLO_MAGIC, version_min, version_max, int(role), len(name)) + name
    return encode_frame(FrameType.HELLO, body)


def _correlation(correlation: int) -> int:
    return _uint(correlation, 0, limits.U64_MAX, "correlation")


def encode_publish(
    correlation: int, event: Event, session: SessionLimits = SessionLimits()
) -> bytes:
    """A ``Publish`` frame (section 4.2)."""
    body = _CORRELATION.pack(_correlation(correlation)) + encode_event(event, session)
    return encode_frame(FrameType.PUBLISH, body, session)


def encode_publish_batch(
    correlation: int, events: Sequence[Event], session: SessionLimits = SessionLimits()
) -> bytes:
    """A ``PublishBatch`` frame (section 4.2): 1..=256 events, all within one frame."""
    count = len(events)
    if not 1 <= count <= limits.BATCH_EVENTS_MAX:
        error = LimitExceeded if count > limits.BATCH_EVENTS_MAX else EncodeError
        raise error(f"a batch holds 1..={limits.BATCH_EVENTS_MAX} events, not {count}")
    parts = [_BATCH_HEADER.pack(_correlation(correlation), count)]
    for index, event in enumerate(events):
        try:
            parts.append(encode_event(event, session))
        except EncodeError as error:
            raise type(error)(f"batch event {index}: {error}") from None
    return encode_frame(FrameType.PUBLISH_BATCH, b"".join(parts), session)


def encode_subscribe(
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
    """A ``Subscribe`` frame (section 4.2). An empty ``name`` is live-only."""
    encoded_name = _ascii(name, "subscription name")
    problem = grammar.subscription_name_problem(encoded_name)
    if problem is not None:
        error = (
            LimitExceeded
            if len(encoded_name) > limits.SUBSCRIPTION_NAME_BYTES_MAX
            else EncodeError
        )
        raise error(f"subscription name {name!r} {problem}")
    if isinstance(patterns, (str, bytes)):
        raise EncodeError("patterns must be a sequence of str, not a single string")
    if not 1 <= len(patterns) <= limits.SUBSCRIPTION_PATTERNS_MAX:
        error = LimitExceeded if len(patterns) > limits.SUBSCRIPTION_PATTERNS_MAX else EncodeError
        raise error(
            f"a subscription has 1..={limits.SUBSCRIPTION_PATTERNS_MAX} patterns, not {len(patterns)}"
        )
    encoded_patterns = [_pattern(pattern) for pattern in patterns]
    list_bytes = sum(1 + len(pattern) for pattern in encoded_patterns)
    if list_bytes > limits.SUBSCRIPTION_PATTERN_LIST_BYTES_MAX:
        raise LimitExceeded(
            f"the subscription's patterns take {list_bytes} bytes with their length bytes;"
            f" the limit is {limits.SUBSCRIPTION_PATTERN_LIST_BYTES_MAX}"
        )
    if group and not encoded_name:
        raise EncodeError("a work-queue group needs a durable subscription name")
    flags = (SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY if automatic_recovery else 0) | (
        SUBSCRIBE_FLAG_GROUP if group else 0
    )
    header = _SUBSCRIBE.pack(
        flags,
        _uint(window_events, 1, limits.WINDOW_EVENTS_MAX, "window_events"),
        _uint(ack_deadline_ms, 0, limits.ACK_DEADLINE_MS_MAX, "ack_deadline_ms"),
        _uint(max_deliveries, 0, limits.MAX_DELIVERIES_MAX, "max_deliveries"),
        _uint(min_severity, 0, limits.SEVERITY_MAX, "min_severity"),
        len(encoded_name),
        len(encoded_patterns),
    )
    parts = [header, encoded_name]
    for pattern in encoded_patterns:
        parts += [bytes((len(pattern),)), pattern]
    return encode_frame(FrameType.SUBSCRIBE, b"".join(parts))


def _seq(seq: int, what: str = "seq") -> int:
    return _uint(seq, 0, limits.U64_MAX, what)


def encode_confirm(first_seq: int, last_seq: int) -> bytes:
    """A ``Confirm`` frame for ``first_seq..=last_seq`` (section 4.2)."""
    first = _seq(first_seq, "first_seq")
    last = _seq(last_seq, "last_seq")
    if first > last:
        raise EncodeError(f"confirm range {first}..={last} is empty: first_seq > last_seq")
    return encode_frame(FrameType.CONFIRM, _CONFIRM.pack(first, last))


def encode_nak(seq: int, delay_ms: int = 0) -> bytes:
    """A ``Nak`` frame: redeliver ``seq`` no earlier than ``delay_ms`` from now."""
    delay = _uint(delay_ms, 0, limits.NAK_DELAY_MS_MAX, "delay_ms")
    return encode_frame(FrameType.NAK, _NAK.pack(_seq(seq), delay))


def encode_working(seq: int) -> bytes:
    """A ``Working`` frame: restart ``seq``'s redelivery deadline."""
    return encode_frame(FrameType.WORKING, _U64.pack(_seq(seq)))


def encode_reject(seq: int) -> bytes:
    """A ``Reject`` frame: ``seq`` will never be processed."""
    return encode_frame(FrameType.REJECT, _U64.pack(_seq(seq)))


def encode_recovered() -> bytes:
    """A ``Recovered`` frame: the subscriber finished its own recovery (section 10.4)."""
    return encode_frame(FrameType.RECOVERED, b"")


def encode_status() -> bytes:
    """A ``Status`` frame."""
    return encode_frame(FrameType.STATUS, b"")


def encode_ping(token: int) -> bytes:
    """A ``Ping`` frame carrying ``token``."""
    return encode_frame(FrameType.PING, _U64.pack(_uint(token, 0, limits.U64_MAX, "token")))


def encode_goodbye() -> bytes:
    """A ``Goodbye`` frame."""
    return encode_frame(FrameType.GOODBYE, b"")


def encode_admin(request: Mapping[str, object]) -> bytes:
    """An ``Admin`` frame: ``request`` as a JSON object of 1..=4096 bytes (section 10.5)."""
    if not isinstance(request, Mapping):
        raise EncodeError(f"an admin request is a JSON object (a dict), not {type(request).__name__}")
    try:
        text = json.dumps(dict(request), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise EncodeError(f"admin request cannot be encoded as JSON: {error}") from None
    body = text.encode("utf-8")
    if len(body) > limits.ADMIN_REQUEST_BYTES_MAX:
        raise LimitExceeded(
            f"admin request is {len(body)} bytes of JSON; at most "
            f"{limits.ADMIN_REQUEST_BYTES_MAX} are allowed"
        )
    return encode_frame(FrameType.ADMIN, body)


# --- decoding -------------------------------------------------------------------------


def _violation(frame: str, problem: str) -> ProtocolViolation:
    return ProtocolViolation(f"server sent a malformed {frame} frame: {problem}")


def _exact(frame: str, body: bytes, size: int) -> None:
    if len(body) != size:
        raise _violation(frame, f"body is {len(body)} bytes, version 1 defines {size}")


def _decode_utf8(frame: str, what: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _violation(frame, f"{what} is not UTF-8 ({error})") from None


def decode_hello_ok(body: bytes) -> HelloOk:
    """Decode a ``HelloOk`` body."""
    _exact("HelloOk", body, _HELLO_OK.size)
    version, node_id, frame_bytes_max, payload_bytes_max = _HELLO_OK.unpack(body)
    if version < 1:
        raise _violation("HelloOk", f"version {version} (versions start at 1)")
    if frame_bytes_max < limits.FRAME_HEADER_BYTES:
        raise _violation("HelloOk", f"frame_bytes_max {frame_bytes_max} leaves no room for a frame")
    return HelloOk(version, node_id, frame_bytes_max, payload_bytes_max)


def decode_stored(body: bytes) -> Stored:
    """Decode a ``Stored`` body, checking ``first_seq``, ``last_seq`` and ``count`` agree."""
    _exact("Stored", body, _STORED.size)
    correlation, first_seq, last_seq, count = _STORED.unpack(body)
    if last_seq < first_seq:
        raise _violation("Stored", f"last_seq {last_seq} < first_seq {first_seq}")
    if not 1 <= count <= limits.BATCH_EVENTS_MAX:
        raise _violation("Stored", f"count {count} outside 1..={limits.BATCH_EVENTS_MAX}")
    if last_seq - first_seq + 1 < count:
        raise _violation(
            "Stored", f"count {count} events cannot have seqs in {first_seq}..={last_seq}"
        )
    return Stored(correlation, first_seq, last_seq, count)


def decode_error(body: bytes) -> ErrorFrame:
    """Decode an ``Error`` body."""
    if len(body) < _ERROR_HEADER.size:
        raise _violation("Error", f"body is {len(body)} bytes, at least {_ERROR_HEADER.size} needed")
    correlation, code, message_len = _ERROR_HEADER.unpack_from(body)
    if message_len > limits.ERROR_MESSAGE_BYTES_MAX:
        raise _violation("Error", f"message_len {message_len} > {limits.ERROR_MESSAGE_BYTES_MAX}")
    _exact("Error", body, _ERROR_HEADER.size + message_len)
    message = _decode_utf8("Error", "message", body[_ERROR_HEADER.size :])
    return ErrorFrame(correlation, code, message)


def decode_subscribed(body: bytes) -> Subscribed:
    """Decode a ``Subscribed`` body."""
    _exact("Subscribed", body, _SUBSCRIBED.size)
    mode, pending_events = _SUBSCRIBED.unpack(body)
    if mode not in SubscribedMode._value2member_map_:
        raise _violation("Subscribed", f"mode {mode} (0 normal, 1 recovering)")
    return Subscribed(SubscribedMode(mode), pending_events)


def decode_deliver(body: bytes) -> Delivery:
    """Decode a ``Deliver`` body, including its event (section 4.1)."""
    frame = "Deliver"
    if len(body) < limits.DELIVER_FIXED_BYTES + limits.EVENT_HEADER_BYTES:
        raise _violation(frame, f"body is {len(body)} bytes, shorter than its fixed fields")
    seq, timestamp_ns, delivery_flags, delivery_count = _DELIVER_HEADER.unpack_from(body)
    if delivery_flags & ~DELIVERY_FLAG_REDELIVERED:
        raise _violation(frame, f"reserved delivery_flags bits set ({delivery_flags:#06x})")
    if delivery_count < 1:
        raise _violation(frame, "delivery_count 0 (it counts this delivery)")
    offset = limits.DELIVER_FIXED_BYTES
    severity, topic_len, source_len, key_len, flags, payload_len = _EVENT_HEADER.unpack_from(
        body, offset
    )
    if severity > limits.SEVERITY_MAX:
        raise _violation(frame, f"severity {severity} > {limits.SEVERITY_MAX}")
    if key_len > limits.KEY_BYTES_MAX:
        raise _violation(frame, f"key_len {key_len} > {limits.KEY_BYTES_MAX}")
    if payload_len > limits.EVENT_PAYLOAD_BYTES_MAX:
        raise _violation(frame, f"payload_len {payload_len} > {limits.EVENT_PAYLOAD_BYTES_MAX}")
    offset += limits.EVENT_HEADER_BYTES
    expected = offset + topic_len + source_len + key_len + payload_len
    if len(body) != expected:
        raise _violation(frame, f"body is {len(body)} bytes, its lengths say {expected}")
    topic_bytes = body[offset : offset + topic_len]
    offset += topic_len
    problem = grammar.topic_problem(topic_bytes)
    if problem is not None:
        raise _violation(frame, f"topic {topic_bytes!r} {problem}")
    source = _decode_utf8(frame, "source", body[offset : offset + source_len])
    offset += source_len
    key = body[offset : offset + key_len]
    offset += key_len
    payload = body[offset:]
    return Delivery(
        seq=seq,
        timestamp_ns=timestamp_ns,
        redelivered=bool(delivery_flags & DELIVERY_FLAG_REDELIVERED),
        delivery_count=delivery_count,
        topic=topic_bytes.decode("ascii"),
        severity=severity,
        source=source,
        flags=flags,
        key=key,
        payload=payload,
    )


def decode_status_reply(body: bytes) -> StatusReply:
    """Decode a ``StatusReply`` body (UTF-8 JSON text; parsed by the caller)."""
    if len(body) > limits.STATUS_JSON_BYTES_MAX:
        raise _violation("StatusReply", f"{len(body)} bytes > {limits.STATUS_JSON_BYTES_MAX}")
    return StatusReply(_decode_utf8("StatusReply", "json", body))


def decode_pong(body: bytes) -> Pong:
    """Decode a ``Pong`` body."""
    _exact("Pong", body, _U64.size)
    return Pong(_U64.unpack(body)[0])


def decode_recovery_done(body: bytes) -> RecoveryDone:
    """Decode a ``RecoveryDone`` body (empty)."""
    _exact("RecoveryDone", body, 0)
    return RecoveryDone()


_DECODERS: dict[FrameType, Callable[[bytes], ServerFrame]] = {
    FrameType.HELLO_OK: decode_hello_ok,
    FrameType.STORED: decode_stored,
    FrameType.ERROR: decode_error,
    FrameType.SUBSCRIBED: decode_subscribed,
    FrameType.DELIVER: decode_deliver,
    FrameType.RECOVERY_DONE: decode_recovery_done,
    FrameType.STATUS_REPLY: decode_status_reply,
    FrameType.PONG: decode_pong,
}


def decode_server_frame(frame_type: FrameType, body: bytes) -> ServerFrame:
    """Decode the body of a server-to-client frame whose header :class:`FrameReader` checked."""
    decoder = _DECODERS.get(frame_type)
    if decoder is None:
        raise ProtocolViolation(
            f"server sent a {frame_type.name} frame, which only clients send"
        )
    return decoder(body)


class FrameReader:
    """Splits the server's byte stream into frames (section 2), trusting no length.

    Feed it whatever the socket returned; take whole frames out with :meth:`next_frame`.
    A header is checked as soon as its bytes are in, before waiting for the body, so a
    lying length never makes the reader wait for (or buffer) more than one legal frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Append bytes received from the server."""
        self._buffer += data

    def _check_header(self) -> int | None:
        """The frame's ``length`` once its header is valid so far, or ``None`` if incomplete."""
        buffer = self._buffer
        if len(buffer) < limits.FRAME_LENGTH_BYTES:
            return None
        length: int = struct.unpack_from("<I", buffer)[0]
        if length > limits.FRAME_LENGTH_MAX:
            raise ProtocolViolation(
                f"server sent a frame of length {length}; the most version 1 allows is "
                f"{limits.FRAME_LENGTH_MAX} (frames are at most {limits.FRAME_BYTES_MAX} bytes)"
            )
        if length < limits.FRAME_LENGTH_MIN:
            raise ProtocolViolation(f"server sent a frame of length {length}; the least is 2")
        if len(buffer) > 4 and buffer[4] not in FrameType._value2member_map_:
            raise ProtocolViolation(f"server sent undefined frame type {buffer[4]:#04x}")
        if len(buffer) > 5 and buffer[5] != 0:
            raise ProtocolViolation(f"server sent a frame whose reserved byte is {buffer[5]:#04x}")
        return length

    def next_frame(self) -> tuple[FrameType, bytes] | None:
        """The next whole frame as ``(frame_type, body)``, or ``None`` until more bytes come.

        Raises:
            ProtocolViolation: the header is invalid (the stream cannot be trusted further).
        """
        length = self._check_header()
        if length is None or len(self._buffer) < limits.FRAME_LENGTH_BYTES + length:
            return None
        end = limits.FRAME_LENGTH_BYTES + length
        frame_type = FrameType(self._buffer[4])
        body = bytes(self._buffer[limits.FRAME_HEADER_BYTES : end])
        del self._buffer[:end]
        return frame_type, body
