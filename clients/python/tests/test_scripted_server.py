"""The clients against a scripted server on a socketpair: what a real daemon never
does (malformed frames, a close in the middle of a frame), deterministically."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest

from herald_client import AsyncClient, Client, ConnectionClosed, Delivery, ProtocolViolation, Role, ServerError

HELLO_OK = struct.pack("<IBBHQII", 20, 0x81, 0, 1, 7, 81_920, 65_536)
SUBSCRIBED = struct.pack("<IBBBQ", 11, 0x84, 0, 0, 0)


def deliver(seq: int) -> bytes:
    event = struct.pack("<BBBBHI", 6, 3, 0, 0, 0, 2) + b"a.b" + b"hi"
    body = struct.pack("<QQHH", seq, 1, 0, 1) + event
    return struct.pack("<IBB", 2 + len(body), 0x85, 0) + body


def error(code: int, message: bytes) -> bytes:
    body = struct.pack("<QHH", 0, code, len(message)) + message
    return struct.pack("<IBB", 2 + len(body), 0x83, 0) + body


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server_end.settimeout(5)
    yield client_end, server_end
    client_end.close()
    server_end.close()


def subscribed_client(pair: tuple[socket.socket, socket.socket]) -> Client:
    client_end, server_end = pair
    server_end.sendall(HELLO_OK)
    client = Client(client_end, "scripted", timeout=5)
    client.hello(Role.SUBSCRIBER, "t")
    server_end.sendall(SUBSCRIBED)  # only now: a Subscribed before Subscribe closes
    client.subscribe("", [">"])
    return client


def test_a_subscribed_before_subscribe_closes(pair: tuple[socket.socket, socket.socket]) -> None:
    client_end, server_end = pair
    server_end.sendall(HELLO_OK + SUBSCRIBED)
    client = Client(client_end, "scripted", timeout=5)
    client.hello(Role.SUBSCRIBER, "t")
    with pytest.raises(ProtocolViolation, match="SUBSCRIBED while the client is in state ready"):
        client.ping()
    assert client.closed


def test_a_zero_timeout_polls_and_takes_a_delivery_already_received(pair: tuple[socket.socket, socket.socket]) -> None:
    client = subscribed_client(pair)
    assert client.next_delivery(timeout=0) is None
    pair[1].sendall(deliver(5))
    delivery = client.next_delivery(timeout=0)
    assert isinstance(delivery, Delivery) and delivery.seq == 5


def test_a_malformed_frame_fails_the_connection_after_the_good_ones(pair: tuple[socket.socket, socket.socket]) -> None:
    client = subscribed_client(pair)
    pair[1].sendall(deliver(5) + struct.pack("<IBB", 2, 0x99, 0))
    first = client.next_delivery(timeout=5)
    assert isinstance(first, Delivery) and first.seq == 5
    with pytest.raises(ProtocolViolation, match="undefined frame type 0x99"):
        client.next_delivery(timeout=5)
    assert client.closed


def test_a_close_in_the_middle_of_a_frame_is_reported(pair: tuple[socket.socket, socket.socket]) -> None:
    client = subscribed_client(pair)
    pair[1].sendall(deliver(5)[:15])
    pair[1].close()
    with pytest.raises(ProtocolViolation, match="middle of a frame"):
        client.next_delivery(timeout=5)


def test_a_frame_longer_than_the_limit_is_refused_before_its_body(pair: tuple[socket.socket, socket.socket]) -> None:
    client = subscribed_client(pair)
    pair[1].sendall(struct.pack("<I", 1 << 31))
    with pytest.raises(ProtocolViolation, match="length 2147483648"):
        client.next_delivery(timeout=5)


def test_the_error_sent_before_a_close_is_raised_instead_of_a_broken_pipe(pair: tuple[socket.socket, socket.socket]) -> None:
    client_end, server_end = pair
    server_end.sendall(HELLO_OK)
    client = Client(client_end, "scripted", timeout=5)
    client.hello(Role.PRODUCER, "t")
    server_end.sendall(error(2, b"not now"))
    server_end.shutdown(socket.SHUT_RDWR)
    with pytest.raises(ServerError, match="not now") as raised:
        for _ in range(100):  # a write to a closed peer fails at once or on the next one
            client.confirm(1)
    assert raised.value.code_name == "unexpected" and client.closed


def test_the_async_client_raises_the_same_violations(pair: tuple[socket.socket, socket.socket]) -> None:
    client_end, server_end = pair

    async def scenario() -> None:
        client_end.setblocking(False)
        server_end.sendall(HELLO_OK)
        client = AsyncClient(client_end, "scripted", timeout=5)
        await client.hello(Role.SUBSCRIBER, "t")
        server_end.sendall(SUBSCRIBED)
        await client.subscribe("", [">"])
        server_end.sendall(deliver(9) + struct.pack("<IBB", 2, 0x85, 7))
        first = await client.next_delivery(timeout=5)
        assert isinstance(first, Delivery) and first.seq == 9
        with pytest.raises(ProtocolViolation, match="reserved byte"):
            await client.next_delivery(timeout=5)
        with pytest.raises(ProtocolViolation):
            await client.ping()
        assert client.closed

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_eof_while_waiting_is_connection_closed(pair: tuple[socket.socket, socket.socket]) -> None:
    client = subscribed_client(pair)
    pair[1].close()
    with pytest.raises(ConnectionClosed, match="closed the connection"):
        client.next_delivery(timeout=5)
