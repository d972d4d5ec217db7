"""Pure encode/decode tests: the example transcript of PROTOCOL.md section 12, every
limit of section 11, and a decoder that trusts no length."""

from __future__ import annotations

import os
import random
import re
import struct
from pathlib import Path

import pytest

from herald_client import EncodeError, Event, LimitExceeded, ProtocolViolation, Role, Severity
from herald_client import codec, limits
from herald_client.codec import FrameReader, FrameType
from herald_client.grammar import topic_matches
from herald_client.model import (
    Delivery,
    ErrorFrame,
    HelloOk,
    Pong,
    RecoveryDone,
    SessionLimits,
    StatusReply,
    Stored,
    Subscribed,
    SubscribedMode,
)

# PROTOCOL.md section 12, byte for byte.
TRANSCRIPT_HELLO = bytes.fromhex(
    "0f000000" "0100" "48524c44" "0100" "0100" "01" "03" "667364"
)
TRANSCRIPT_HELLO_OK = bytes.fromhex(
    "14000000" "8100" "0100" "0700000000000000" "00400100" "00000100"
)
TRANSCRIPT_PUBLISH = bytes.fromhex(
    "2a000000" "0200" "0100000000000000" "03" "0d" "00" "00" "0000" "09000000"
    "66732e766f6c312e6572726f72" "6469736b2066756c6c"
)
TRANSCRIPT_STORED = bytes.fromhex(
    "1c000000" "8200" "0100000000000000" "2a00000000000000" "2a00000000000000" "0100"
)

PROTOCOL_MD = Path(__file__).resolve().parents[3] / "PROTOCOL.md"


def frames_of(data: bytes) -> list[tuple[FrameType, bytes]]:
    reader = FrameReader()
    reader.feed(data)
    frames = []
    while (frame := reader.next_frame()) is not None:
        frames.append(frame)
    assert reader.buffered_bytes == 0
    return frames


def decode(data: bytes) -> object:
    ((frame_type, body),) = frames_of(data)
    return codec.decode_server_frame(frame_type, body)


# --- section 12 ------------------------------------------------------------------------


def test_hello_encodes_exactly_as_the_transcript() -> None:
    assert codec.encode_hello(Role.PRODUCER, "fsd") == TRANSCRIPT_HELLO


def test_publish_encodes_exactly_as_the_transcript() -> None:
    event = Event("fs.vol1.error", b"disk full", severity=Severity.ERR)
    assert codec.encode_publish(1, event) == TRANSCRIPT_PUBLISH


def test_hello_ok_decodes_from_the_transcript() -> None:
    assert decode(TRANSCRIPT_HELLO_OK) == HelloOk(
        version=1, node_id=7, frame_bytes_max=81_920, event_payload_bytes_max=65_536
    )


def test_stored_decodes_from_the_transcript() -> None:
    stored = decode(TRANSCRIPT_STORED)
    assert stored == Stored(correlation=1, first_seq=42, last_seq=42, count=1)
    assert isinstance(stored, Stored) and stored.seq == 42


def test_transcript_decodes_when_fed_one_byte_at_a_time() -> None:
    reader = FrameReader()
    frames = []
    for byte in TRANSCRIPT_HELLO_OK + TRANSCRIPT_STORED:
        reader.feed(bytes((byte,)))
        if (frame := reader.next_frame()) is not None:
            frames.append(frame)
    assert [frame_type for frame_type, _ in frames] == [FrameType.HELLO_OK, FrameType.STORED]


def transcript_frames_in_protocol_md() -> list[bytes]:
    """The frames of section 12 as PROTOCOL.md shows them: hex pairs before the labels."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    block = text.split("<!-- transcript -->", 1)[1].split("```", 2)[1]
    frames: list[bytes] = []
    for line in block.splitlines():
        if line.startswith(("C→S", "S→C")):
            frames.append(b"")
        elif frames and (match := re.match(r"((?:[0-9a-f]{2} )*[0-9a-f]{2})(?:  |$)", line)):
            frames[-1] += bytes.fromhex(match.group(1))
    return frames


@pytest.mark.skipif(not PROTOCOL_MD.exists(), reason=f"{PROTOCOL_MD} not found (package outside the repository)")
def test_protocol_md_transcript_is_the_bytes_these_tests_use() -> None:
    assert transcript_frames_in_protocol_md() == [
        TRANSCRIPT_HELLO,
        TRANSCRIPT_HELLO_OK,
        TRANSCRIPT_PUBLISH,
        TRANSCRIPT_STORED,
    ]


# --- every server frame decodes, and only its one valid encoding ----------------------


def server_frame(frame_type: int, body: bytes, reserved: int = 0) -> bytes:
    return struct.pack("<IBB", 2 + len(body), frame_type, reserved) + body


def event_bytes(
    *,
    severity: int = 6,
    topic: bytes = b"fs.a",
    source: bytes = b"fsd",
    key: bytes = b"",
    flags: int = 0,
    payload: bytes = b"hi",
    lengths: tuple[int, int, int, int] | None = None,
) -> bytes:
    topic_len, source_len, key_len, payload_len = lengths or (
        len(topic),
        len(source),
        len(key),
        len(payload),
    )
    header = struct.pack("<BBBBHI", severity, topic_len, source_len, key_len, flags, payload_len)
    return header + topic + source + key + payload


def deliver_body(*, delivery_flags: int = 1, delivery_count: int = 2, event: bytes | None = None) -> bytes:
    head = struct.pack("<QQHH", 42, 1_700_000_000_000_000_000, delivery_flags, delivery_count)
    return head + (event if event is not None else event_bytes(key=b"k1", flags=0xBEEF))


def test_deliver_decodes_every_field() -> None:
    delivery = decode(server_frame(0x85, deliver_body()))
    assert delivery == Delivery(
        seq=42,
        timestamp_ns=1_700_000_000_000_000_000,
        redelivered=True,
        delivery_count=2,
        topic="fs.a",
        severity=6,
        source="fsd",
        flags=0xBEEF,
        key=b"k1",
        payload=b"hi",
    )


def test_the_small_server_frames_decode() -> None:
    assert decode(server_frame(0x84, struct.pack("<BQ", 1, 9))) == Subscribed(SubscribedMode.RECOVERING, 9)
    assert decode(server_frame(0x86, b"")) == RecoveryDone()
    assert decode(server_frame(0x87, b'{"a":1}')) == StatusReply('{"a":1}')
    assert decode(server_frame(0x88, struct.pack("<Q", 5))) == Pong(5)
    error = server_frame(0x83, struct.pack("<QHH", 3, 5, 4) + b"full")
    assert decode(error) == ErrorFrame(correlation=3, code=5, message="full")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (deliver_body(delivery_flags=2), "reserved delivery_flags"),
        (deliver_body(delivery_count=0), "delivery_count 0"),
        (deliver_body(event=event_bytes(severity=8)), "severity 8"),
        (deliver_body(event=event_bytes(topic=b"fs..a")), "empty segment"),
        (deliver_body(event=event_bytes(topic=b"")), "is 0 bytes"),
        (deliver_body(event=event_bytes(topic=b"fs.*")), "outside"),
        (deliver_body(event=event_bytes(source=b"\xff\xfe")), "not UTF-8"),
        (deliver_body(event=event_bytes(key=b"k" * 65)), "key_len 65"),
        (deliver_body(event=event_bytes(lengths=(4, 3, 0, 3))), "lengths say"),
        (deliver_body(event=event_bytes(lengths=(4, 3, 0, 1))), "lengths say"),
        (deliver_body(event=event_bytes(lengths=(4, 3, 0, 65_537))), "payload_len 65537"),
        (deliver_body()[:25], "shorter than its fixed fields"),
    ],
)
def test_a_malformed_deliver_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        decode(server_frame(0x85, body))


@pytest.mark.parametrize(
    ("frame_type", "body", "problem"),
    [
        (0x81, TRANSCRIPT_HELLO_OK[6:] + b"\x00", "body is 19 bytes"),
        (0x81, struct.pack("<HQII", 0, 7, 81_920, 65_536), "version 0"),
        (0x82, struct.pack("<QQQH", 1, 5, 4, 1), "last_seq 4 < first_seq 5"),
        (0x82, struct.pack("<QQQH", 1, 5, 5, 0), "count 0"),
        (0x82, struct.pack("<QQQH", 1, 5, 6, 3), "count 3 events cannot"),
        (0x82, struct.pack("<QQQH", 1, 5, 500, 257), "count 257"),
        (0x83, struct.pack("<QHH", 0, 1, 1025) + b"x" * 1025, "message_len 1025"),
        (0x83, struct.pack("<QHH", 0, 1, 5) + b"abc", "body is 15 bytes"),
        (0x83, struct.pack("<QH", 0, 1), "at least 12"),
        (0x83, struct.pack("<QHH", 0, 1, 2) + b"\xc3\x28", "not UTF-8"),
        (0x84, struct.pack("<BQ", 2, 0), "mode 2"),
        (0x84, struct.pack("<B", 0), "body is 1 bytes"),
        (0x86, b"\x00", "body is 1 bytes"),
        (0x87, b"\xff", "not UTF-8"),
        (0x88, b"\x00" * 7, "body is 7 bytes"),
    ],
)
def test_a_malformed_server_frame_is_refused(frame_type: int, body: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        decode(server_frame(frame_type, body))


def test_a_client_frame_type_from_the_server_is_refused() -> None:
    with pytest.raises(ProtocolViolation, match="only clients send"):
        decode(TRANSCRIPT_PUBLISH)


# --- the frame reader refuses a bad header before the body arrives ---------------------


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (struct.pack("<I", limits.FRAME_LENGTH_MAX + 1), "length 81917"),
        (struct.pack("<I", 0xFFFF_FFFF), "length 4294967295"),
        (struct.pack("<I", 1), "length 1"),
        (struct.pack("<IB", 2, 0x00), "undefined frame type 0x00"),
        (struct.pack("<IB", 2, 0x89), "undefined frame type 0x89"),
        (struct.pack("<IB", 2, 0x0E), "undefined frame type 0x0e"),
        (struct.pack("<IBB", 2, 0x86, 1), "reserved byte"),
    ],
)
def test_a_bad_header_is_refused_without_waiting_for_the_body(header: bytes, problem: str) -> None:
    reader = FrameReader()
    reader.feed(header)
    with pytest.raises(ProtocolViolation, match=problem):
        reader.next_frame()


def test_the_largest_legal_frame_is_accepted_and_waited_for() -> None:
    body = b"{" + b" " * (limits.STATUS_JSON_BYTES_MAX - 2) + b"}"
    data = server_frame(0x87, body)
    assert len(data) == limits.FRAME_BYTES_MAX
    reader = FrameReader()
    reader.feed(data[:-1])
    assert reader.next_frame() is None
    reader.feed(data[-1:])
    assert reader.next_frame() == (FrameType.STATUS_REPLY, body)


RANDOM_BYTES_SEED = 0x5EED_C0DE
"""The seed of a run without ``HERALD_PY_CODEC_SEED``: fixed, so every run is the same."""


def test_random_bytes_only_ever_raise_protocol_violation() -> None:
    seed = int(os.environ.get("HERALD_PY_CODEC_SEED", RANDOM_BYTES_SEED))
    # Shown by pytest when the test fails (and with -s always).
    print(f"seed {seed}; reproduce: HERALD_PY_CODEC_SEED={seed} python -m pytest tests/test_codec.py -k random_bytes")
    rng = random.Random(seed)
    valid = [TRANSCRIPT_HELLO_OK, TRANSCRIPT_STORED, server_frame(0x85, deliver_body())]
    for _ in range(3000):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        reader = FrameReader()
        reader.feed(bytes(data))
        try:
            while (frame := reader.next_frame()) is not None:
                codec.decode_server_frame(*frame)
        except ProtocolViolation:
            pass
        except Exception as error:  # pragma: no cover - the failure report
            pytest.fail(f"seed {seed}: {bytes(data).hex()} raised {error!r}")


# --- encoding checks every limit before sending ---------------------------------------


def publish(**fields: object) -> bytes:
    event = Event(**{"topic": "fs.a", **fields})  # type: ignore[arg-type]
    return codec.encode_publish(1, event)


def test_an_event_with_every_field_at_its_limit_fits_in_a_publish() -> None:
    frame = publish(
        topic="t" * 255, source="s" * 255, key=b"k" * 64, payload=b"p" * 65_536, flags=0xFFFF, severity=7
    )
    assert len(frame) == limits.FRAME_HEADER_BYTES + 8 + limits.EVENT_BYTES_MAX


@pytest.mark.parametrize(
    ("fields", "error", "problem"),
    [
        ({"topic": "t" * 256}, LimitExceeded, "is 256 bytes"),
        ({"topic": ""}, EncodeError, "is 0 bytes"),
        ({"topic": "fs..a"}, EncodeError, "empty segment"),
        ({"topic": "fs.a."}, EncodeError, "empty segment"),
        ({"topic": "fs.*"}, EncodeError, "outside"),
        ({"topic": "fs/a"}, EncodeError, "outside"),
        ({"topic": "fé.a"}, EncodeError, "not ASCII"),
        ({"source": "s" * 256}, LimitExceeded, "source is 256 bytes"),
        ({"source": "é" * 128}, LimitExceeded, "source is 256 bytes"),
        ({"source": "\udc80"}, EncodeError, "UTF-8"),
        ({"key": b"k" * 65}, LimitExceeded, "key is 65 bytes"),
        ({"key": "é" * 33}, LimitExceeded, "key is 66 bytes"),
        ({"payload": b"p" * 65_537}, LimitExceeded, "payload is 65537 bytes"),
        ({"payload": "text"}, EncodeError, "payload must be bytes"),
        ({"severity": 8}, EncodeError, "severity is 8"),
        ({"severity": -1}, EncodeError, "severity is -1"),
        ({"severity": True}, EncodeError, "must be an int"),
        ({"flags": 0x1_0000}, EncodeError, "flags is 65536"),
    ],
)
def test_an_event_breaking_a_limit_is_refused(fields: dict[str, object], error: type, problem: str) -> None:
    with pytest.raises(error, match=problem):
        publish(**fields)


def test_the_server_announced_payload_limit_is_honoured() -> None:
    session = SessionLimits().lowered_by(HelloOk(1, 7, 81_920, 1000))
    codec.encode_publish(1, Event("fs.a", b"p" * 1000), session)
    with pytest.raises(LimitExceeded, match="payload is 1001 bytes; at most 1000"):
        codec.encode_publish(1, Event("fs.a", b"p" * 1001), session)


def test_the_server_announced_frame_limit_is_honoured() -> None:
    session = SessionLimits().lowered_by(HelloOk(1, 7, 100, 65_536))
    with pytest.raises(LimitExceeded, match="frames are at most 100 bytes"):
        codec.encode_publish(1, Event("fs.a", b"p" * 100), session)


def test_a_hello_ok_cannot_raise_the_limits_above_version_1s() -> None:
    session = SessionLimits().lowered_by(HelloOk(1, 7, 1 << 30, 1 << 30))
    assert session == SessionLimits(limits.FRAME_BYTES_MAX, limits.EVENT_PAYLOAD_BYTES_MAX)


def test_batches_hold_1_to_256_events_within_one_frame() -> None:
    small = Event("fs.a", b"x")
    frame = codec.encode_publish_batch(9, [small] * 256)
    assert struct.unpack_from("<IBBQH", frame) == (len(frame) - 4, 0x03, 0, 9, 256)
    with pytest.raises(EncodeError, match="not 0"):
        codec.encode_publish_batch(9, [])
    with pytest.raises(LimitExceeded, match="not 257"):
        codec.encode_publish_batch(9, [small] * 257)
    big = Event("fs.a", b"x" * 40_000)
    with pytest.raises(LimitExceeded, match="frames are at most 81920 bytes"):
        codec.encode_publish_batch(9, [big, big, big])
    with pytest.raises(EncodeError, match="batch event 1: topic"):
        codec.encode_publish_batch(9, [small, Event("bad topic")])


def test_subscribe_encodes_its_fields_in_order() -> None:
    frame = codec.encode_subscribe(
        "ops",
        ["fs.>", "*.error"],
        min_severity=3,
        window_events=10,
        ack_deadline_ms=5000,
        max_deliveries=4,
        automatic_recovery=True,
    )
    body = frame[6:]
    assert frame[4] == 0x04
    assert struct.unpack_from("<IIIHBBB", body) == (1, 10, 5000, 4, 3, 3, 2)
    assert body[17:] == b"ops" + b"\x04fs.>" + b"\x07*.error"


def test_subscribe_sets_the_group_flag_only_for_a_named_subscription() -> None:
    frame = codec.encode_subscribe("jobs", [">"], group=True, automatic_recovery=True)
    assert struct.unpack_from("<I", frame[6:])[0] == 0b11
    with pytest.raises(EncodeError, match="durable subscription name"):
        codec.encode_subscribe("", [">"], group=True)


@pytest.mark.parametrize(
    ("name", "patterns", "options", "error", "problem"),
    [
        ("n" * 65, [">"], {}, LimitExceeded, "is 65 bytes"),
        ("bad name", [">"], {}, EncodeError, "outside A-Z"),
        ("ops", [], {}, EncodeError, "not 0"),
        ("ops", [">"] * 17, {}, LimitExceeded, "not 17"),
        ("ops", ">", {}, EncodeError, "not a single string"),
        ("ops", ["fs*"], {}, EncodeError, "wildcard that is not a whole segment"),
        ("ops", ["a.>.b"], {}, EncodeError, "'>' before its last segment"),
        ("ops", ["a..b"], {}, EncodeError, "empty segment"),
        ("ops", ["p" * 256], {}, LimitExceeded, "is 256 bytes"),
        ("ops", [">"], {"window_events": 0}, EncodeError, "window_events is 0"),
        ("ops", [">"], {"window_events": 4097}, EncodeError, "window_events is 4097"),
        ("ops", [">"], {"ack_deadline_ms": 3_600_001}, EncodeError, "ack_deadline_ms"),
        ("ops", [">"], {"max_deliveries": 65_536}, EncodeError, "max_deliveries"),
        ("ops", [">"], {"min_severity": 8}, EncodeError, "min_severity is 8"),
    ],
)
def test_a_subscribe_breaking_a_limit_is_refused(
    name: str, patterns: list[str], options: dict[str, int], error: type, problem: str
) -> None:
    with pytest.raises(error, match=problem):
        codec.encode_subscribe(name, patterns, **options)  # type: ignore[arg-type]


def test_settling_frames_encode_and_check_their_ranges() -> None:
    assert codec.encode_confirm(3, 7) == server_frame(0x05, struct.pack("<QQ", 3, 7))
    assert codec.encode_nak(3, 250) == server_frame(0x06, struct.pack("<QI", 3, 250))
    assert codec.encode_working(3) == server_frame(0x07, struct.pack("<Q", 3))
    assert codec.encode_reject(3) == server_frame(0x08, struct.pack("<Q", 3))
    assert codec.encode_recovered() == server_frame(0x09, b"")
    assert codec.encode_status() == server_frame(0x0A, b"")
    assert codec.encode_ping(11) == server_frame(0x0B, struct.pack("<Q", 11))
    assert codec.encode_goodbye() == server_frame(0x0C, b"")
    with pytest.raises(EncodeError, match="first_seq > last_seq"):
        codec.encode_confirm(7, 3)
    with pytest.raises(EncodeError, match="delay_ms is 3600001"):
        codec.encode_nak(3, 3_600_001)
    with pytest.raises(EncodeError, match="seq is -1"):
        codec.encode_reject(-1)
    with pytest.raises(EncodeError, match="seq is 18446744073709551616"):
        codec.encode_working(1 << 64)


def test_hello_checks_role_name_and_versions() -> None:
    with pytest.raises(EncodeError, match="role must be one of"):
        codec.encode_hello(5, "x")  # type: ignore[arg-type]
    with pytest.raises(LimitExceeded, match="client_name is 256 bytes"):
        codec.encode_hello(Role.CONTROL, "n" * 256)
    with pytest.raises(EncodeError, match="version_min is 0"):
        codec.encode_hello(Role.CONTROL, "x", version_min=0)
    with pytest.raises(EncodeError, match="version_max is 1"):
        codec.encode_hello(Role.CONTROL, "x", version_min=2, version_max=1)


def test_admin_requests_are_json_objects_of_at_most_4096_bytes() -> None:
    frame = codec.encode_admin({"op": "dead.list", "limit": 5})
    assert frame == server_frame(0x0D, b'{"op":"dead.list","limit":5}')
    with pytest.raises(EncodeError, match="a dict"):
        codec.encode_admin(["op"])  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="cannot be encoded as JSON"):
        codec.encode_admin({"op": object()})
    with pytest.raises(LimitExceeded, match="at most 4096"):
        codec.encode_admin({"op": "x" * 4096})


# --- section 8 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("fs.*.error", "fs.vol1.error", True),
        ("fs.*.error", "fs.error", False),
        ("fs.*.error", "fs.a.b.error", False),
        ("fs.>", "fs.a", True),
        ("fs.>", "fs.a.b.c", True),
        ("fs.>", "fs", False),
        (">", "anything.at.all", True),
        ("fs.a", "fs.a", True),
        ("fs.a", "fs.a.b", False),
    ],
)
def test_patterns_match_as_section_8_says(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(pattern, topic) is matches


def test_a_subscriptions_patterns_take_at_most_332_bytes_in_all() -> None:
    largest = ["p" * 255, "q" * 75]  # 256 + 76 = 332 with the length bytes
    frame = codec.encode_subscribe(name="n" * 64, patterns=largest)
    assert len(frame) == 6 + 17 + 64 + 332
    with pytest.raises(LimitExceeded, match="332"):
        codec.encode_subscribe(name="n", patterns=["p" * 255, "q" * 76])
