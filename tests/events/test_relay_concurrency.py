"""Several relays on one outbox (replicas of a service): one relay per partition at a time, so
nothing is published twice and each user's events keep their order under concurrent changes."""

from __future__ import annotations

import asyncio

from points_platform.events import partition_of
from points_platform.relay import JetStreamPublisher, Relay
from tests.events.conftest import PARTITIONS, Feed, versions_by_user
from tests.support.wait import HANG_SECONDS


class Counting:
    """Publishes through JetStream and counts what it sent; `pause_first` holds the first publish
    until released, with the relay inside its pass."""

    def __init__(self, inner: JetStreamPublisher, *, pause_first: bool = False) -> None:
        self.inner = inner
        self.sent: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        if not pause_first:
            self.release.set()

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        self.entered.set()
        await self.release.wait()
        await self.inner.publish(subject, payload, msg_id)
        self.sent.append(msg_id)


async def test_a_second_relay_skips_a_partition_another_relay_is_publishing(feed: Feed) -> None:
    """Fails without the partition lock: the second relay would publish the same rows again."""
    for _ in range(3):
        await feed.change("alice")
    first = Counting(JetStreamPublisher(feed.nc), pause_first=True)
    second = Counting(JetStreamPublisher(feed.nc))
    holding = asyncio.create_task(feed.relay(first).relay_once())
    await asyncio.wait_for(first.entered.wait(), HANG_SECONDS)  # inside its pass, lock held

    assert await feed.relay(second).relay_once() == 0
    assert second.sent == []

    first.release.set()
    assert await holding == 3
    assert first.sent == feed.appended
    assert len(await feed.stored()) == 3


async def test_each_users_order_holds_with_racing_relays_and_concurrent_changes(feed: Feed) -> None:
    """Four writers change six users (sharing partitions) while two relays race over the outbox;
    every event is sent once, and each user's versions reach the stream as 1, 2, 3, ..."""
    users = [f"user-{n}" for n in range(6)]
    assert len({partition_of(user, PARTITIONS) for user in users}) < len(users)  # users share partitions
    publishers = [Counting(JetStreamPublisher(feed.nc)) for _ in range(2)]
    relays = [feed.relay(publisher) for publisher in publishers]
    writing = asyncio.Event()
    writing.set()

    async def write(writer: int) -> None:
        for n in range(15):
            await feed.change(users[(writer + n) % len(users)])

    async def relay_while_writing(relay: Relay) -> None:
        while writing.is_set():
            await relay.relay_once()
        while not await feed.is_drained():
            await relay.relay_once()

    relaying = [asyncio.create_task(relay_while_writing(relay)) for relay in relays]
    await asyncio.gather(*(write(writer) for writer in range(4)))
    writing.clear()
    await asyncio.wait_for(asyncio.gather(*relaying), HANG_SECONDS)

    sent = publishers[0].sent + publishers[1].sent
    assert sorted(sent) == sorted(feed.appended)  # each event sent by exactly one relay, once
    stored = await feed.stored()
    assert len(stored) == 60
    versions = versions_by_user(stored)
    assert versions == {user: list(range(1, len(versions[user]) + 1)) for user in users}
