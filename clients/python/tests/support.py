"""Helpers shared by the daemon tests."""

from __future__ import annotations

from herald_client import AsyncClient, Client, Delivery, RecoveryDone

DELIVERY_TIMEOUT_S = 5.0
"""Longest a test waits for a delivery it expects. The wait ends as soon as it arrives:
this is a bound on a failure, not a pause."""


def receive(client: Client, count: int) -> list[Delivery]:
    """Exactly the next ``count`` deliveries (RecoveryDone is not expected here)."""
    received: list[Delivery] = []
    while len(received) < count:
        item = client.next_delivery(DELIVERY_TIMEOUT_S)
        assert item is not None, f"expected {count} deliveries, got {len(received)}: {received}"
        assert isinstance(item, Delivery), f"expected a delivery, got {item!r} after {received}"
        received.append(item)
    return received


def receive_until_recovery_done(client: Client) -> list[Delivery]:
    """The replayed deliveries of a recovering subscription, up to its RecoveryDone."""
    received: list[Delivery] = []
    while True:
        item = client.next_delivery(DELIVERY_TIMEOUT_S)
        assert item is not None, f"no RecoveryDone after {received}"
        if isinstance(item, RecoveryDone):
            return received
        received.append(item)


async def areceive(client: AsyncClient, count: int) -> list[Delivery]:
    """The asyncio :func:`receive`."""
    received: list[Delivery] = []
    while len(received) < count:
        item = await client.next_delivery(DELIVERY_TIMEOUT_S)
        assert item is not None, f"expected {count} deliveries, got {len(received)}: {received}"
        assert isinstance(item, Delivery), f"expected a delivery, got {item!r} after {received}"
        received.append(item)
    return received


async def areceive_until_recovery_done(client: AsyncClient) -> list[Delivery]:
    """The asyncio :func:`receive_until_recovery_done`."""
    received: list[Delivery] = []
    while True:
        item = await client.next_delivery(DELIVERY_TIMEOUT_S)
        assert item is not None, f"no RecoveryDone after {received}"
        if isinstance(item, RecoveryDone):
            return received
        received.append(item)
