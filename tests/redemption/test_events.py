"""Redemption's domain events on a real nats-server, from real redemptions through real wallet and catalog
servers: each kind published once per change, nothing for a change that rolled back, and one user's events
in the order of their changes when the user's redemptions and uses race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import func, select, text

from points.events.v1 import envelope_pb2
from points.redemption.v1 import redemption_pb2 as rpb
from points_platform.embedded_nats import EmbeddedNats
from points_platform.events import partition_of
from points_platform.jetstream import stream_name
from redemption.main import MIGRATIONS
from redemption.store.events import PARTITIONS, SERVICE
from redemption.store.tables import outbox
from tests.conftest import NewDatabase
from tests.events.test_wiring_doc import migrated_outbox_is_the_librarys
from tests.redemption.conftest import Suite, cosmetic_spec, md, settle, started_suite, uid
from tests.redemption.test_entitlements import consume, discount_spec
from tests.support.nats import Stored, stream_contents
from tests.support.wait import HANG_SECONDS, blocked_on_locks, commits_refused, eventually

COMPLETED = rpb.REDEMPTION_STATE_COMPLETED


@pytest.fixture(scope="module")
async def suite(new_database: NewDatabase, module_nats_server: EmbeddedNats) -> AsyncIterator[Suite]:
    async with started_suite(new_database, module_nats_server.url) as started:
        yield started


@pytest.fixture
def nc(module_nats_client: NatsClient) -> NatsClient:
    return module_nats_client


async def test_the_migration_creates_the_librarys_outbox_table(new_database: NewDatabase) -> None:
    assert await migrated_outbox_is_the_librarys(new_database, MIGRATIONS)


async def published(suite: Suite, nc: NatsClient, user: str) -> list[Stored]:
    """`user`'s messages in stream order, once the relay has published everything committed so far."""

    async def drained() -> bool:
        async with suite.redemption.engine.connect() as conn:
            return await conn.scalar(select(func.count()).where(outbox.c.published_time.is_(None))) == 0

    await eventually(drained, what="the redemption outbox published")
    return [m for m in await stream_contents(nc, stream_name(SERVICE)) if m.event.user_id == user]


def summary(event: envelope_pb2.Event) -> tuple[str, str, int]:
    return event.event_type, event.aggregate_id, event.aggregate_version


async def refund(suite: Suite, redemption_id: str) -> rpb.Redemption:
    reply = await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
        request_id=uid("refund"), redemption_id=redemption_id, reason="changed mind"), metadata=md("admin"),
        timeout=HANG_SECONDS)
    [settled] = await settle(suite, [reply.redemption])
    assert settled.state == rpb.REDEMPTION_STATE_REFUNDED, settled
    return settled


async def test_each_kind_is_published_once_per_change(suite: Suite, nc: NatsClient) -> None:
    user, poor = uid("feed"), uid("poor")
    await suite.fund(user, 1_000)
    code_item, cosmetic = await suite.item(**discount_spec()), await suite.item(**cosmetic_spec(price=100))
    redeem_id = uid("redeem")
    bought = await suite.redeem(user, code_item.item_id, request_id=redeem_id)
    assert bought.state == COMPLETED
    [code] = bought.entitlement_ids
    use_id = uid("use")
    used = await consume(suite, request_id=use_id, entitlement_id=code)
    # Replays change nothing, so they publish nothing.
    assert await suite.redeem(user, code_item.item_id, request_id=redeem_id) == bought
    assert await consume(suite, request_id=use_id, entitlement_id=code) == used
    kept = await suite.redeem(user, cosmetic.item_id)
    [cosmetic_entitlement] = kept.entitlement_ids
    await refund(suite, kept.redemption_id)
    cancelled = await suite.redeem(poor, cosmetic.item_id)
    assert cancelled.state == rpb.REDEMPTION_STATE_CANCELLED

    stored = await published(suite, nc, user)
    assert [summary(m.event) for m in stored] == [
        ("entitlement_granted", code, 1), ("redemption_completed", bought.redemption_id, 1),
        ("entitlement_consumed", code, 2),
        ("entitlement_granted", cosmetic_entitlement, 1), ("redemption_completed", kept.redemption_id, 1),
        ("redemption_refunded", kept.redemption_id, 2)]
    partition = partition_of(user, PARTITIONS)
    for message in stored:
        event = message.event
        assert message.msg_id == event.event_id
        assert message.subject == f"points.redemption.{event.event_type}.{partition}"
        assert event.source_service == "redemption" and event.user_id == user
        assert event.occurred_time.ToDatetime(UTC) <= suite.clock.now()
    granted, completed, consumed, _, _, refunded = (m.event for m in stored)
    assert (granted.entitlement_granted.redemption_id, granted.entitlement_granted.item_id,
            granted.entitlement_granted.max_uses) == (bought.redemption_id, code_item.item_id, 1)
    assert (completed.redemption_completed.item_id, completed.redemption_completed.quantity,
            completed.redemption_completed.price) == (code_item.item_id, 1, bought.price)
    assert (consumed.entitlement_consumed.use_count, consumed.entitlement_consumed.remaining_uses) == (1, 0)
    assert (refunded.redemption_refunded.refund, refunded.redemption_refunded.item_id) == (kept.price, cosmetic.item_id)
    [poor_event] = [m.event for m in await published(suite, nc, poor)]
    assert summary(poor_event) == ("redemption_cancelled", cancelled.redemption_id, 1)
    assert poor_event.redemption_cancelled.reason == "INSUFFICIENT_FUNDS"
    ids = [m.event.event_id for m in await stream_contents(nc, stream_name(SERVICE))]
    assert len(ids) == len(set(ids))


async def test_a_use_that_rolled_back_publishes_nothing(suite: Suite, nc: NatsClient) -> None:
    user = uid("rollback")
    await suite.fund(user, 1_000)
    bought = await suite.redeem(user, (await suite.item(**discount_spec(max_uses=2))).item_id)
    [code] = bought.entitlement_ids
    # The use and its event are written; the commit then fails (a deferred trigger), so both roll back.
    async with commits_refused(suite.redemption.engine, "entitlement_uses", "NEW.reference = 'refused-at-commit'"):
        with pytest.raises(grpc.aio.AioRpcError):
            await consume(suite, reference="refused-at-commit", entitlement_id=code)
    used = await consume(suite, entitlement_id=code)
    assert used.entitlement.use_count == 1
    assert [summary(m.event) for m in await published(suite, nc, user)] == [
        ("entitlement_granted", code, 1), ("redemption_completed", bought.redemption_id, 1),
        ("entitlement_consumed", code, 2)]


async def test_one_users_racing_redemptions_and_uses_publish_in_the_order_of_their_changes(
        suite: Suite, nc: NatsClient) -> None:
    user = uid("racer")
    await suite.fund(user, 10_000)
    codes, cosmetic = await suite.item(**discount_spec(max_uses=3)), await suite.item(**cosmetic_spec(price=10))
    bought = await asyncio.gather(*(suite.redeem(user, item.item_id) for item in [codes, cosmetic] * 4))
    assert all(r.state == COMPLETED for r in bought)
    code_ids = [r.entitlement_ids[0] for r in bought if r.item_id == codes.item_id]
    # Every use of one entitlement queues behind a lock the test holds, then they all go at once, racing the
    # refunds of the cosmetics.
    async with suite.redemption.engine.connect() as holder:
        await holder.execute(text("SELECT 1 FROM entitlements WHERE entitlement_id = ANY(:ids) FOR UPDATE"),
                             {"ids": code_ids})
        uses = [asyncio.ensure_future(consume(suite, entitlement_id=code)) for code in code_ids for _ in range(3)]
        await blocked_on_locks(suite.redemption.engine, len(uses))
        await holder.rollback()
        await asyncio.gather(*uses, *(refund(suite, r.redemption_id) for r in bought if r.item_id == cosmetic.item_id))

    stored = await published(suite, nc, user)
    events = [m.event for m in stored]
    assert len(events) == 8 * 2 + len(code_ids) * 3 + 4  # grants and completions, uses, refunds
    assert len({m.subject.rsplit(".", 1)[1] for m in stored}) == 1  # one partition
    versions: dict[str, list[int]] = {}
    position = {summary(e): i for i, e in enumerate(events)}
    for event in events:
        versions.setdefault(event.aggregate_id, []).append(event.aggregate_version)
    for redemption in bought:
        refunded = redemption.item_id == cosmetic.item_id
        assert versions[redemption.redemption_id] == ([1, 2] if refunded else [1])
        [entitlement] = redemption.entitlement_ids
        assert position[("entitlement_granted", entitlement, 1)] < position[
            ("redemption_completed", redemption.redemption_id, 1)]
        assert versions[entitlement] == ([1] if refunded else [1, 2, 3, 4])
    for event in events:
        if event.event_type == "entitlement_consumed":
            assert event.aggregate_version == event.entitlement_consumed.use_count + 1
    # The stream holds them in the outbox's sequence order: the order the changes committed in.
    async with suite.redemption.engine.connect() as conn:
        payloads = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.sequence))).scalars()
        in_outbox = [e.event_id for e in map(envelope_pb2.Event.FromString, payloads) if e.user_id == user]
    assert [e.event_id for e in events] == in_outbox
