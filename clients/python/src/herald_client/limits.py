"""Every limit of wire protocol version 1, in one place (PROTOCOL.md section 11).

The encoder checks each field against these before anything is sent, and the decoder
checks what the server sends against them too. ``HelloOk`` may announce smaller frame
and payload limits; the client then honours the smaller of the two.
"""

from typing import Final

PROTOCOL_VERSION: Final = 1
"""The only version this client speaks (its range is 1..=1)."""

HELLO_MAGIC: Final = b"HRLD"

FRAME_BYTES_MAX: Final = 81_920
"""Largest frame, length field included."""
FRAME_LENGTH_BYTES: Final = 4
"""The ``length`` field that starts every frame."""
FRAME_HEADER_BYTES: Final = 6
"""length (4) + frame_type (1) + reserved (1)."""
FRAME_LENGTH_MIN: Final = 2
"""``length`` counts frame_type and reserved, so it is never below 2."""
FRAME_LENGTH_MAX: Final = FRAME_BYTES_MAX - FRAME_LENGTH_BYTES
FRAME_BODY_BYTES_MAX: Final = FRAME_BYTES_MAX - FRAME_HEADER_BYTES

EVENT_HEADER_BYTES: Final = 10
"""severity, topic_len, source_len, key_len, flags, payload_len (section 4.1)."""
EVENT_PAYLOAD_BYTES_MAX: Final = 65_536
TOPIC_BYTES_MAX: Final = 255
SOURCE_BYTES_MAX: Final = 255
CLIENT_NAME_BYTES_MAX: Final = 255
KEY_BYTES_MAX: Final = 64
EVENT_FLAGS_MAX: Final = 0xFFFF
SEVERITY_MAX: Final = 7

BATCH_EVENTS_MAX: Final = 256

SUBSCRIPTION_NAME_BYTES_MAX: Final = 64
SUBSCRIPTION_PATTERNS_MAX: Final = 16
PATTERN_BYTES_MAX: Final = 255
SUBSCRIPTION_PATTERN_LIST_BYTES_MAX: Final = 332
"""A subscription's patterns in all, each with its length byte (section 11)."""
WINDOW_EVENTS_MAX: Final = 4096
ACK_DEADLINE_MS_MAX: Final = 3_600_000
MAX_DELIVERIES_MAX: Final = 0xFFFF
WINDOW_EVENTS_DEFAULT: Final = 64
"""This client's choice when a subscribe does not say (the protocol has no default)."""
NAK_DELAY_MS_MAX: Final = 3_600_000

ERROR_MESSAGE_BYTES_MAX: Final = 1024
STATUS_JSON_BYTES_MAX: Final = 81_914
ADMIN_REQUEST_BYTES_MAX: Final = 4096

U16_MAX: Final = 0xFFFF
U32_MAX: Final = 0xFFFF_FFFF
U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF

EVENT_BYTES_MAX: Final = (
    EVENT_HEADER_BYTES + TOPIC_BYTES_MAX + SOURCE_BYTES_MAX + KEY_BYTES_MAX + EVENT_PAYLOAD_BYTES_MAX
)
"""One event with every field at its limit: 66 120 bytes."""

PUBLISH_FIXED_BYTES: Final = 8
"""Publish body before the event: correlation."""
PUBLISH_BATCH_FIXED_BYTES: Final = 10
"""PublishBatch body before the events: correlation, count."""
DELIVER_FIXED_BYTES: Final = 20
"""Deliver body before the event: seq, timestamp_ns, delivery_flags, delivery_count."""
SUBSCRIBE_FIXED_BYTES: Final = 17

PIPELINED_REQUESTS_MAX: Final = 1024
"""Requests needing an answer that this client lets wait unread at the server.

PROTOCOL.md 10.6: the daemon stops reading a connection whose unread answers fill its
reserve (about 2,500 ``Stored``). A blocking client that kept writing without reading
would then deadlock, so past this many the client reads answers (and keeps them for
the caller) before it writes more.
"""

RECV_CHUNK_BYTES: Final = 256 * 1024
"""Bytes asked of the socket per read."""

# The relations section 11 states, checked when the module loads.
assert FRAME_HEADER_BYTES + PUBLISH_FIXED_BYTES + EVENT_BYTES_MAX <= FRAME_BYTES_MAX
assert FRAME_HEADER_BYTES + PUBLISH_BATCH_FIXED_BYTES + EVENT_BYTES_MAX <= FRAME_BYTES_MAX
assert FRAME_HEADER_BYTES + DELIVER_FIXED_BYTES + EVENT_BYTES_MAX <= FRAME_BYTES_MAX
assert STATUS_JSON_BYTES_MAX == FRAME_BODY_BYTES_MAX
assert ADMIN_REQUEST_BYTES_MAX <= FRAME_BODY_BYTES_MAX
