"""The outbox and relay against a real nats-server and PostgreSQL: what commits is published once,
what rolls back never, an outage of NATS loses and duplicates nothing."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from points.events.v1 import catalog_pb2
from points_platform.embedded_nats import EmbeddedNats
from points_platform.events import new_event, partition_of, subject_for
from points_platform.relay import JetStreamPublisher, PublishError, _lock_namespace
from tests.events.conftest import PARTITIONS, SERVICE, Feed, credit_event, versions_by_user
from tests.support.nats import reconnected
from tests.support.wait import eventually

USERS = [f"user-{n}" for n in range(8)]


async def test_committed_events_are_published_once_with_their_id_and_subject(feed: Feed) -> None:
    for _ in range(2):
        for user in USERS:
            await feed.change(user)
    relay = feed.relay()

    assert await relay.relay_once() == 16
    assert await relay.relay_once() == 0  # marked published: never again

    stored = await feed.stored()
    assert [m.event.event_id for m in stored] == [m.msg_id for m in stored]
    assert sorted(m.msg_id for m in stored) == sorted(feed.appended)
    for message in stored:
        event = message.event
        assert message.subject == subject_for(SERVICE, "transaction_posted", partition_of(event.user_id, PARTITIONS))
        assert event.event_type == "transaction_posted" and event.source_service == SERVICE
    assert versions_by_user(stored) == {user: [1, 2] for user in USERS}
    assert await feed.unpublished() == 0


async def test_a_rolled_back_change_publishes_nothing(feed: Feed) -> None:
    with pytest.raises(RuntimeError):
        async with feed.engine.begin() as conn:
            await feed.outbox.append(conn, [credit_event("ghost", 1, feed.clock)])
            raise RuntimeError("the change failed after its event was appended")
    kept = await feed.change("alice")

    assert await feed.relay().relay_once() == 1
    assert [m.event.event_id for m in await feed.stored()] == [kept.event_id]


class LosesAck:
    """Stores the n-th message in JetStream but reports a failure, as when the acknowledgement is
    lost on the way back or the relay dies before marking the row."""

    def __init__(self, inner: JetStreamPublisher, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        self.calls += 1
        await self.inner.publish(subject, payload, msg_id)
        if self.calls == self.n:
            raise PublishError("acknowledgement lost")


async def test_a_publish_whose_ack_was_lost_is_stored_once(feed: Feed) -> None:
    """The row stays unpublished and goes again; JetStream drops the repeat by its Nats-Msg-Id
    (without the header the stream would hold it twice)."""
    for user in ["alice"] * 3:
        await feed.change(user)
    losing = LosesAck(JetStreamPublisher(feed.nc), n=2)
    relay = feed.relay(losing)

    with pytest.raises(PublishError):
        await relay.relay_once()
    assert await feed.unpublished() == 2  # the first was marked; the second is kept with the third
    assert await relay.relay_once() == 2

    stored = await feed.stored()
    assert len(stored) == 3 and sorted(m.msg_id for m in stored) == sorted(feed.appended)
    assert versions_by_user(stored) == {"alice": [1, 2, 3]}


async def test_a_nats_outage_loses_nothing_and_duplicates_nothing(feed: Feed, nats_server: EmbeddedNats) -> None:
    relay = feed.relay()
    for user in USERS[:4]:
        await feed.change(user)
    assert await relay.relay_once() == 4

    nats_server.stop()
    for user in USERS:  # the load goes on while NATS is down
        await feed.change(user)
    with pytest.raises(PublishError):
        await relay.relay_once()
    assert await feed.unpublished() == len(USERS)

    await nats_server.start()
    await reconnected(feed.nc)
    for user in USERS[:2]:
        await feed.change(user)

    async def drained() -> bool:
        try:
            await relay.relay_once()
        except PublishError:
            return False  # JetStream may still be recovering its store
        return await feed.unpublished() == 0

    await eventually(drained, what="the backlog published after the outage")
    stored = await feed.stored()
    assert len(stored) == len(feed.appended) == 14
    assert sorted(m.msg_id for m in stored) == sorted(feed.appended)
    expected = {user: [1, 2, 3] if user in USERS[:2] else [1, 2] if user in USERS[:4] else [1] for user in USERS}
    assert versions_by_user(stored) == expected


async def test_the_run_loop_backs_off_through_an_outage_and_then_delivers(
    feed: Feed, nats_server: EmbeddedNats
) -> None:
    relay = feed.relay(max_backoff_seconds=0.2)  # a short cap keeps the retries coming in a test
    stop = asyncio.Event()
    loop = asyncio.create_task(relay.run(stop))
    try:
        await feed.change("alice")
        await eventually(feed.is_drained, what="published while NATS is up")

        nats_server.stop()
        failed_before = publish_errors()
        await feed.change("alice")
        relay.wake()

        async def failing_again() -> bool:
            return publish_errors() >= failed_before + 2

        await eventually(failing_again, what="the loop retrying while NATS is down")
        assert await feed.unpublished() == 1

        await nats_server.start()
        await eventually(feed.is_drained, what="published after NATS came back")
    finally:
        stop.set()
        await loop
    assert sorted(m.msg_id for m in await feed.stored()) == sorted(feed.appended)


def publish_errors() -> float:
    return REGISTRY.get_sample_value("points_outbox_publish_errors_total", {"service": SERVICE}) or 0.0


async def test_pruning_deletes_only_rows_published_long_enough_ago(feed: Feed) -> None:
    relay = feed.relay()
    await feed.change("alice")
    await relay.relay_once()
    feed.clock.advance(3600)
    await feed.change("bob")
    await relay.relay_once()  # published now: kept
    await feed.change("carol")  # unpublished: never pruned

    assert await relay.prune_once(keep_seconds=600) == 1
    assert await relay.prune_once(keep_seconds=600) == 0
    assert await feed.unpublished() == 1


async def test_an_event_about_no_user_is_partitioned_by_its_aggregate(feed: Feed) -> None:
    sold_out = new_event(
        SERVICE,
        catalog_pb2.StockSoldOut(item_id="item-9", total_stock=5),
        user_id="",
        aggregate_id="item-9",
        aggregate_version=3,
        occurred_time=feed.clock.now(),
    )
    async with feed.engine.begin() as conn:
        await feed.outbox.append(conn, [sold_out])
    await feed.relay().relay_once()

    [stored] = await feed.stored()
    assert stored.subject == subject_for(SERVICE, "stock_sold_out", partition_of("item-9", PARTITIONS))
    assert stored.event == sold_out


async def test_a_partition_another_relay_holds_is_skipped_and_published_once_it_is_free(feed: Feed) -> None:
    """Another relay's pass holds one partition's advisory lock (taken here in a transaction that stays
    open): this relay publishes every other partition in its one transaction, and that one after."""
    for user in USERS:
        await feed.change(user)
    held = partition_of(USERS[0], PARTITIONS)
    relay = feed.relay()
    async with feed.engine.connect() as other, other.begin():
        assert await other.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(
            _lock_namespace(feed.outbox.table), held)))
        others = [u for u in USERS if partition_of(u, PARTITIONS) != held]
        assert await relay.relay_once() == len(others)
        assert sorted(m.event.user_id for m in await feed.stored()) == sorted(others)
    assert await relay.relay_once() == len(USERS) - len(others)
    assert versions_by_user(await feed.stored()) == {user: [1] for user in USERS}
    assert await feed.unpublished() == 0
