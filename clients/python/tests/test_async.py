"""The asyncio client against a real daemon: the main flows, and tasks sharing a client."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from conftest import Daemon
from support import DELIVERY_TIMEOUT_S, areceive, areceive_until_recovery_done

from herald_client import AsyncClient, ConnectionClosed, ErrorCode, Event, Role, ServerError, Severity


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function in its own event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def runner(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=30))

    return runner


async def connect(daemon: Daemon, role: Role, client_name: str = "") -> AsyncClient:
    return await AsyncClient.connect(daemon.socket_path, role=role, client_name=client_name, timeout=10)


@run
async def test_async_publish_subscribe_confirm_round_trip(daemon: Daemon) -> None:
    async with await connect(daemon, Role.SUBSCRIBER, "ops") as subscriber:
        assert (await subscriber.subscribe("ops", "fs.>")).pending_events == 0
        async with await connect(daemon, Role.PRODUCER, "fsd") as producer:
            seq = await producer.publish("fs.vol1.error", b"disk full", severity=Severity.ERR, key="k1")
            (delivery,) = await areceive(subscriber, 1)
            assert (delivery.seq, delivery.source, delivery.payload, delivery.key) == (seq, "fsd", b"disk full", b"k1")
            assert not delivery.redelivered
            await subscriber.confirm(delivery.seq)
            assert await producer.publish("fs.vol1.error", b"disk full", severity=Severity.ERR, key="k1") == seq
    assert subscriber.closed and producer.closed


@run
async def test_async_batch_and_pipelined_publishes(daemon: Daemon) -> None:
    subscriber = await connect(daemon, Role.SUBSCRIBER)
    await subscriber.subscribe("", ["bulk.>"])
    producer = await connect(daemon, Role.PRODUCER, "bulk")
    stored = await producer.publish_batch([Event("bulk.a", b"1"), Event("bulk.b", b"2")])
    correlations = [await producer.send_publish("bulk.c", bytes([i])) for i in range(10)]
    answers = [await producer.read_stored() for _ in range(10)]
    assert [a.correlation for a in answers] == correlations
    deliveries = await areceive(subscriber, 12)
    assert [d.seq for d in deliveries] == [stored.first_seq, stored.last_seq, *(a.seq for a in answers)]
    await subscriber.goodbye()
    await producer.goodbye()


@run
async def test_tasks_sharing_one_client_each_get_their_own_answer(daemon: Daemon) -> None:
    both = await connect(daemon, Role.BOTH, "shared")
    await both.subscribe("", ["share.>"])

    # One task waits for deliveries while others publish and ping on the same client.
    reader = asyncio.create_task(areceive(both, 50))
    seqs = await asyncio.gather(*(both.publish("share.x", str(i).encode()) for i in range(50)))
    rtts = await asyncio.gather(*(both.ping() for _ in range(5)))
    deliveries = await reader
    assert sorted(d.seq for d in deliveries) == sorted(seqs) and len(set(seqs)) == 50
    assert all(rtt >= 0 for rtt in rtts)
    await both.goodbye()


@run
async def test_a_cancelled_wait_leaves_the_async_client_usable(daemon: Daemon) -> None:
    subscriber = await connect(daemon, Role.SUBSCRIBER)
    await subscriber.subscribe("", ["late.>"])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscriber.next_delivery(), timeout=0.05)
    assert await subscriber.next_delivery(timeout=0.05) is None
    producer = await connect(daemon, Role.PRODUCER, "p")
    seq = await producer.publish("late.x", b"")
    (delivery,) = await areceive(subscriber, 1)
    assert delivery.seq == seq and await subscriber.ping() >= 0
    subscriber.close()
    producer.close()


@run
async def test_async_durable_subscription_redelivers_after_disconnect_and_nak(daemon: Daemon) -> None:
    subscriber = await connect(daemon, Role.SUBSCRIBER, "w")
    await subscriber.subscribe("async-orders", ["orders.>"])
    producer = await connect(daemon, Role.PRODUCER, "shop")
    seqs = [await producer.publish("orders.new", bytes([i])) for i in range(3)]
    deliveries = await areceive(subscriber, 3)
    await subscriber.confirm(deliveries[0].seq)
    await subscriber.nak(deliveries[1].seq, delay_ms=0)
    (again,) = await areceive(subscriber, 1)
    assert (again.seq, again.redelivered, again.delivery_count) == (seqs[1], True, 2)
    subscriber.close()

    resumed = await connect(daemon, Role.SUBSCRIBER, "w")
    await resumed.subscribe("async-orders", ["orders.>"])
    redelivered = await areceive(resumed, 2)
    assert [d.seq for d in redelivered] == seqs[1:] and all(d.redelivered for d in redelivered)
    resumed.close()
    producer.close()


@run
async def test_async_reject_dead_letter_and_status(daemon: Daemon) -> None:
    subscriber = await connect(daemon, Role.SUBSCRIBER, "m")
    await subscriber.subscribe("async-mail", ["mail.>"])
    producer = await connect(daemon, Role.PRODUCER, "web")
    seq = await producer.publish("mail.send", b"bad")
    (delivery,) = await areceive(subscriber, 1)
    await subscriber.reject(delivery.seq)
    await subscriber.ping()

    control = await connect(daemon, Role.CONTROL)
    dead = await control.admin({"op": "dead.list", "subscription": "async-mail"})
    assert dead["total"] == 1 and dead["dead_letters"][0]["seq"] == seq
    status = await control.status()
    (subscription,) = status["subscriptions"]
    assert subscription["name"] == "async-mail" and subscription["dead_lettered"] == 1
    for client in (subscriber, producer, control):
        await client.goodbye()


@run
async def test_async_publish_on_a_subscriber_connection_is_not_permitted(daemon: Daemon) -> None:
    subscriber = await connect(daemon, Role.SUBSCRIBER)
    with pytest.raises(ServerError) as raised:
        await subscriber.publish("fs.a", b"")
    assert raised.value.code == ErrorCode.NOT_PERMITTED and raised.value.closes
    assert subscriber.closed
    with pytest.raises(ServerError):
        await subscriber.ping()


@run
async def test_async_kill_9_then_restart_redelivers_in_recovery(daemon: Daemon) -> None:
    subscriber = await connect(daemon, Role.SUBSCRIBER, "ledger")
    await subscriber.subscribe("async-ledger", ["ledger.>"])
    producer = await connect(daemon, Role.PRODUCER, "bank")
    seqs = [await producer.publish("ledger.entry", bytes([i])) for i in range(3)]
    await areceive(subscriber, 3)

    daemon.restart_after_kill()
    with pytest.raises(ConnectionClosed):
        await subscriber.next_delivery(DELIVERY_TIMEOUT_S)

    resumed = await connect(daemon, Role.SUBSCRIBER, "ledger")
    assert (await resumed.subscribe("async-ledger", ["ledger.>"])).recovering
    replayed = await areceive_until_recovery_done(resumed)
    assert [d.seq for d in replayed] == seqs and all(d.redelivered for d in replayed)
    await resumed.confirm_range(seqs[0], seqs[-1])
    await resumed.recovered()
    producer = await connect(daemon, Role.PRODUCER, "bank")
    new = await producer.publish("ledger.entry", b"new")
    (fresh,) = await areceive(resumed, 1)
    assert (fresh.seq, fresh.redelivered) == (new, False)
    await resumed.goodbye()
    await producer.goodbye()
