"""The client-side state table (PROTOCOL.md section 6) and answer matching, without I/O."""

from __future__ import annotations

import struct

import pytest

from herald_client import (
    ConnectionClosed,
    Event,
    ForbiddenError,
    FullError,
    ProtocolViolation,
    Role,
    ServerError,
    Stored,
    UsageError,
)
from herald_client.connection import ClientState, ProtocolState

HELLO_OK = struct.pack("<IBBHQII", 20, 0x81, 0, 1, 7, 81_920, 65_536)


def frame(frame_type: int, body: bytes) -> bytes:
    return struct.pack("<IBB", 2 + len(body), frame_type, 0) + body


def stored(correlation: int, seq: int, count: int = 1) -> bytes:
    return frame(0x82, struct.pack("<QQQH", correlation, seq, seq + count - 1, count))


def error(correlation: int, code: int, message: bytes = b"why") -> bytes:
    return frame(0x83, struct.pack("<QHH", correlation, code, len(message)) + message)


SUBSCRIBED = frame(0x84, struct.pack("<BQ", 0, 0))
RECOVERY_DONE = frame(0x86, b"")


def deliver(seq: int) -> bytes:
    event = struct.pack("<BBBBHI", 6, 3, 0, 0, 0, 0) + b"a.b"
    return frame(0x85, struct.pack("<QQHH", seq, 1, 0, 1) + event)


def ready() -> ProtocolState:
    state = ProtocolState()
    state.hello(Role.BOTH, "t")
    state.receive(HELLO_OK)
    assert state.state is ClientState.READY
    return state


def test_requests_before_hello_are_refused_client_side() -> None:
    state = ProtocolState()
    with pytest.raises(UsageError, match="hello first"):
        state.publish(Event("a.b"))


@pytest.mark.parametrize(
    "data",
    [stored(1, 1), SUBSCRIBED, deliver(1), RECOVERY_DONE, frame(0x87, b"{}"), frame(0x88, bytes(8))],
)
def test_anything_but_hello_ok_or_error_while_awaiting_hello_ok_closes(data: bytes) -> None:
    state = ProtocolState()
    state.hello(Role.PRODUCER, "t")
    with pytest.raises(ProtocolViolation, match="await_hello_ok"):
        state.receive(data)
    assert state.state is ClientState.CLOSED and isinstance(state.failure, ProtocolViolation)


@pytest.mark.parametrize("data", [deliver(5), RECOVERY_DONE, SUBSCRIBED, HELLO_OK])
def test_deliveries_before_subscribing_close(data: bytes) -> None:
    state = ready()
    with pytest.raises(ProtocolViolation, match="state ready"):
        state.receive(data)


def test_a_status_reply_to_a_subscriber_closes() -> None:
    state = ready()
    state.subscribe("", [">"])
    state.receive(SUBSCRIBED + deliver(3))
    with pytest.raises(ProtocolViolation, match="STATUS_REPLY"):
        state.receive(frame(0x87, b"{}"))


def test_answers_are_matched_to_their_publishes_in_order() -> None:
    state = ready()
    first, _ = state.publish(Event("a.b"))
    second, _ = state.publish_batch([Event("a.b"), Event("a.c")])
    state.receive(stored(first, 10) + stored(second, 11, count=2))
    assert state.publish_result(second) == Stored(second, 11, 12, 2)
    assert state.publish_result(first) == Stored(first, 10, 10, 1)
    assert state.unanswered_requests == 0


def test_an_answer_out_of_order_closes() -> None:
    state = ready()
    first, _ = state.publish(Event("a.b"))
    second, _ = state.publish(Event("a.b"))
    with pytest.raises(ProtocolViolation, match=f"oldest unanswered publish is {first}"):
        state.receive(stored(second, 10))


def test_a_stored_for_no_publish_or_with_a_wrong_count_closes() -> None:
    with pytest.raises(ProtocolViolation, match="for no publish"):
        ready().receive(stored(1, 1))
    state = ready()
    correlation, _ = state.publish(Event("a.b"))
    with pytest.raises(ProtocolViolation, match="count 2"):
        state.receive(stored(correlation, 1, count=2))
    state = ready()
    correlation, _ = state.publish_batch([Event("a.b")] * 2)
    with pytest.raises(ProtocolViolation, match="batch of 2 with Stored count 3"):
        state.receive(stored(correlation, 1, count=3))


def test_full_fails_only_its_publish() -> None:
    state = ready()
    first, _ = state.publish(Event("a.b"))
    second, _ = state.publish(Event("a.b"))
    state.receive(error(first, 5, b"the log is full") + stored(second, 9))
    full = state.publish_result(first)
    assert isinstance(full, FullError) and not full.closes and full.correlation == first
    assert state.publish_result(second) == Stored(second, 9, 9, 1)
    assert state.failure is None and state.state is ClientState.READY


def test_forbidden_fails_only_its_publish_its_subscribe_or_its_status() -> None:
    state = ready()
    first, _ = state.publish(Event("net.b"))
    second, _ = state.publish(Event("a.b"))
    state.receive(error(first, 13, b"not this topic") + stored(second, 9))
    refused = state.publish_result(first)
    assert isinstance(refused, ForbiddenError) and not refused.closes
    assert state.publish_result(second) == Stored(second, 9, 9, 1)
    # A refused subscribe leaves the connection as it was: another may be sent.
    state.subscribe("", ["net.>"])
    state.receive(error(0, 13, b"not these patterns"))
    assert state.state is ClientState.READY
    with pytest.raises(ForbiddenError):
        state.subscribe_result()
    state.subscribe("", ["a.>"])
    state.receive(SUBSCRIBED)
    assert state.subscribe_result() is not None and state.state is ClientState.SUBSCRIBED
    assert state.failure is None
    control = ProtocolState()
    control.hello(Role.CONTROL, "t")
    control.receive(HELLO_OK)
    status_id, _ = control.status()
    control.receive(error(0, 13, b"no admin"))
    assert isinstance(control.status_result(status_id), ForbiddenError)
    assert control.failure is None


def test_a_forbidden_hello_ends_the_connection() -> None:
    state = ProtocolState()
    state.hello(Role.CONTROL, "t")
    state.receive(error(0, 13, b"no admin"))
    assert isinstance(state.failure, ForbiddenError)
    assert state.state is ClientState.CLOSED


def test_a_closing_error_fails_every_waiting_request() -> None:
    state = ready()
    correlation, _ = state.publish(Event("a.b"))
    status_id, _ = state.status()
    state.receive(error(0, 9, b"not permitted"))
    failure = state.failure
    assert isinstance(failure, ServerError) and failure.code_name == "not_permitted"
    assert state.publish_result(correlation) is failure
    assert state.status_result(status_id) is failure
    with pytest.raises(ServerError):
        state.ping()


def test_a_non_closing_error_without_correlation_is_a_violation() -> None:
    with pytest.raises(ProtocolViolation, match="without a correlation"):
        ready().receive(error(0, 5))


def test_an_unknown_error_code_is_reported_and_treated_as_closing() -> None:
    state = ready()
    state.receive(error(0, 77, b"new in version 2"))
    assert isinstance(state.failure, ServerError)
    assert (state.failure.code_name, state.failure.closes) == ("unknown_77", True)


def test_after_goodbye_answers_still_count_and_deliveries_are_dropped() -> None:
    state = ready()
    state.subscribe("", [">"])
    state.receive(SUBSCRIBED)
    correlation, _ = state.publish(Event("a.b"))
    state.goodbye()
    state.receive(deliver(4) + stored(correlation, 5))
    assert state.publish_result(correlation) == Stored(correlation, 5, 5, 1)
    assert not state.deliveries
    state.receive_eof()
    assert state.state is ClientState.CLOSED and isinstance(state.failure, ConnectionClosed)


def test_eof_in_the_middle_of_a_frame_is_a_violation() -> None:
    state = ready()
    state.receive(stored(1, 1)[:10])
    state.receive_eof()
    assert isinstance(state.failure, ProtocolViolation) and "middle of a frame" in str(state.failure)


def test_a_hello_ok_for_another_version_closes() -> None:
    state = ProtocolState()
    state.hello(Role.PRODUCER, "t")
    with pytest.raises(ProtocolViolation, match="version 2"):
        state.receive(struct.pack("<IBBHQII", 20, 0x81, 0, 2, 7, 81_920, 65_536))


def test_an_abandoned_request_drops_its_late_answer() -> None:
    state = ready()
    correlation, _ = state.publish(Event("a.b"))
    token, _ = state.ping()
    state.abandon("publish", correlation)
    state.abandon("ping", token)
    state.receive(stored(correlation, 1) + frame(0x88, struct.pack("<Q", token)))
    assert state.publish_result(correlation) is None and not state.pong_received(token)


def test_a_pong_for_no_ping_closes() -> None:
    with pytest.raises(ProtocolViolation, match="token 9"):
        ready().receive(frame(0x88, struct.pack("<Q", 9)))


def test_correlations_never_use_zero() -> None:
    state = ready()
    state._next_correlation = 2**64 - 1  # noqa: SLF001 - the wrap is the point
    last, _ = state.publish(Event("a.b"))
    after, _ = state.publish(Event("a.b"))
    assert (last, after) == (2**64 - 1, 1)
