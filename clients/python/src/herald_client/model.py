"""The values a client sends and receives: roles, severities, events and replies."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from . import limits


class Role(enum.IntEnum):
    """What a connection may do, fixed by its ``Hello`` (PROTOCOL.md sections 4.2, 5)."""

    PRODUCER = 1
    """publishes events"""
    SUBSCRIBER = 2
    """subscribes and settles deliveries"""
    BOTH = 3
    """publishes, subscribes and settles"""
    CONTROL = 4
    """asks for status and sends operator (admin) requests"""


class Severity(enum.IntEnum):
    """Syslog severities (section 4.1): lower is more severe."""

    EMERG = 0
    ALERT = 1
    CRIT = 2
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7


class SubscribedMode(enum.IntEnum):
    """``Subscribed.mode`` (section 4.3)."""

    NORMAL = 0
    RECOVERING = 1
    """the daemon replays unsettled events, then sends ``RecoveryDone`` (section 10.4)"""


@dataclass(frozen=True, slots=True)
class Event:
    """One event to publish (section 4.1).

    Attributes:
        topic: dot-separated ASCII topic, e.g. ``"fs.vol1.error"`` (section 8).
        payload: the event's body, 0..=65 536 bytes.
        severity: 0 (emerg) ..= 7 (debug).
        source: who produced it; empty means the connection's hello ``client_name``.
        flags: application-defined ``u16``, stored and delivered unchanged.
        key: idempotency key, 0..=64 bytes (a ``str`` is UTF-8 encoded); empty = none.
    """

    topic: str
    payload: bytes = b""
    severity: int = Severity.INFO
    source: str = ""
    flags: int = 0
    key: bytes | str = b""


@dataclass(frozen=True, slots=True)
class HelloOk:
    """The server accepted the hello (section 4.3)."""

    version: int
    node_id: int
    frame_bytes_max: int
    event_payload_bytes_max: int


@dataclass(frozen=True, slots=True)
class Stored:
    """Published events are durable (section 4.3).

    For a single publish ``first_seq == last_seq`` is the event's sequence number. For a
    batch, events whose idempotency key was remembered keep their (lower) original
    numbers, so the numbers of a batch's events lie in ``first_seq..=last_seq`` but are not
    necessarily consecutive; ``count`` is the number of distinct events.
    """

    correlation: int
    first_seq: int
    last_seq: int
    count: int

    @property
    def seq(self) -> int:
        """The sequence number of a single publish (``first_seq``)."""
        return self.first_seq


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The subscription is active (section 4.3)."""

    mode: SubscribedMode
    pending_events: int
    """events waiting for the subscription when it was attached (0 when live-only)"""

    @property
    def recovering(self) -> bool:
        """Whether the subscription is in recovery mode (section 10.4)."""
        return self.mode is SubscribedMode.RECOVERING


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event delivered to the subscription (section 4.3, ``Deliver``).

    Settle it by its ``seq``: ``confirm``, ``reject``, ``nak`` or ``working``.
    """

    seq: int
    timestamp_ns: int
    """when the daemon stored the event, ns since the Unix epoch"""
    redelivered: bool
    delivery_count: int
    """sends of this event to this subscription, this one included (saturates at 65 535)"""
    topic: str
    severity: int
    source: str
    flags: int
    key: bytes
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RecoveryDone:
    """Every replayed event has been sent (section 10.4).

    It comes in the delivery stream after the last replayed event. Unless the
    subscription asked for automatic recovery, new events follow only once the client
    sends ``Recovered``.
    """


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """A decoded ``Error`` frame (section 4.3); the client raises it as ``ServerError``."""

    correlation: int
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class StatusReply:
    """A decoded ``StatusReply``: the JSON text, not yet parsed."""

    json_text: str


@dataclass(frozen=True, slots=True)
class Pong:
    """A decoded ``Pong``."""

    token: int


ServerFrame = HelloOk | Stored | ErrorFrame | Subscribed | Delivery | RecoveryDone | StatusReply | Pong
"""Every frame a server may send in version 1, decoded."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """The limits a connection's encoder enforces: version 1's, lowered by ``HelloOk``."""

    frame_bytes_max: int = limits.FRAME_BYTES_MAX
    event_payload_bytes_max: int = limits.EVENT_PAYLOAD_BYTES_MAX

    def lowered_by(self, hello_ok: HelloOk) -> SessionLimits:
        """These limits, lowered to what the server announced (section 5, step 3)."""
        return SessionLimits(
            frame_bytes_max=min(self.frame_bytes_max, hello_ok.frame_bytes_max),
            event_payload_bytes_max=min(
                self.event_payload_bytes_max, hello_ok.event_payload_bytes_max
            ),
        )
