"""Earning's domain events on a real nats-server, from real earning and wallet servers: each kind
published once per change, nothing for a change that rolled back or a replay, exactly one
challenge_budget_exhausted when concurrent earners spend the last of a budget, and one user's events
in the order of their batches when the user's batches race."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from sqlalchemy import func, select, text

from earning.main import MIGRATIONS
from earning.store.events import PARTITIONS, SERVICE
from earning.store.tables import outbox
from points.earning.v1 import earning_pb2 as pb
from points.events.v1 import earning_pb2 as events_pb2
from points.events.v1 import envelope_pb2
from points_platform.embedded_nats import EmbeddedNats
from points_platform.events import partition_of
from points_platform.jetstream import stream_name
from tests.conftest import NewDatabase
from tests.earning.conftest import ADMIN, APP, StartSuite, Suite
from tests.earning.test_streaks_challenges_holds import create_challenge, join
from tests.events.test_wiring_doc import migrated_outbox_is_the_librarys
from tests.support.nats import Stored, stream_contents
from tests.support.wait import HANG_SECONDS, blocked_on_locks, commits_refused, eventually

LIKE, SHARE = 2, 4
AWARDED, HELD = 1, 4


@pytest.fixture
async def suite(start_suite: StartSuite, module_nats_server: EmbeddedNats, nc: NatsClient) -> Suite:
    # One stream for the module: each test starts from an empty one.
    with contextlib.suppress(NotFoundError):  # the first test finds no stream yet: the relay creates it
        await nc.jetstream().purge_stream(stream_name(SERVICE))
    return await start_suite(nats_url=module_nats_server.url)


@pytest.fixture
def nc(module_nats_client: NatsClient) -> NatsClient:
    return module_nats_client


async def test_the_migration_creates_the_librarys_outbox_table(new_database: NewDatabase) -> None:
    assert await migrated_outbox_is_the_librarys(new_database, MIGRATIONS)


async def sql(s: Suite, statement: str, **params: object) -> int:
    async with s.earning.engine.connect() as conn:
        return int((await conn.execute(text(statement), params)).scalar_one())


async def published(s: Suite, nc: NatsClient) -> list[Stored]:
    """Every message in stream order, once the relay has published everything committed so far; each
    event id stored once, and exactly the outbox's rows."""

    async def drained() -> bool:
        async with s.earning.engine.connect() as conn:
            return await conn.scalar(select(func.count()).where(outbox.c.published_time.is_(None))) == 0

    await eventually(drained, what="the earning outbox published")
    stored = await stream_contents(nc, stream_name(SERVICE)) if await sql(s, "SELECT count(*) FROM outbox") else []
    assert len({m.msg_id for m in stored}) == len(stored) == await sql(s, "SELECT count(*) FROM outbox")
    for m in stored:
        e = m.event
        assert (e.source_service, m.msg_id) == (SERVICE, e.event_id)
        key = e.user_id or e.aggregate_id
        assert m.subject == f"points.earning.{e.event_type}.{partition_of(key, PARTITIONS)}"
    return stored


def of(stored: list[Stored], user: str) -> list[envelope_pb2.Event]:
    return [m.event for m in stored if m.event.user_id == user]


def summary(e: envelope_pb2.Event) -> tuple[str, str, int]:
    return e.event_type, e.aggregate_id, e.aggregate_version


async def record_batch(s: Suite, events: list[pb.ActivityEvent]) -> list[pb.EventResult]:
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP,
                                          timeout=HANG_SECONDS)
    return list(reply.results)


async def resolve(s: Suite, held_id: str, approve: bool) -> None:
    await s.stub.ResolveHeldEarning(
        pb.ResolveHeldEarningRequest(request_id=f"rv-{held_id}", held_earning_id=held_id, approve=approve),
        metadata=ADMIN, timeout=HANG_SECONDS)


async def test_each_kind_is_published_once_per_change(suite: Suite, nc: NatsClient) -> None:
    s = suite
    # A batch: one points_earned for the user, naming its events and the credit that pays them.
    batch = [s.event("amy", LIKE, target_id=f"v{i}") for i in range(3)]
    results = await record_batch(s, batch)
    assert [r.status for r in results] == [AWARDED] * 3
    assert await record_batch(s, batch)  # a replay changes nothing: publishes nothing
    # Budgets: one run out by a join's early bonus, one by a batch; a trimmed share after it adds none.
    by_join = await create_challenge(s, "ch-join", early_join_window_seconds=3600, early_join_bonus_points=20,
                                     sponsor="Brand", sponsor_budget_points=20)
    by_batch = await create_challenge(s, "ch-batch", activity_types=[SHARE], sponsor="Brand",
                                      sponsor_budget_points=5)
    await join(s, by_join.challenge_id, "cat")
    await join(s, by_batch.challenge_id, "dan")
    assert (await s.record(s.event("dan", SHARE, target_id="s1"))).points_awarded == 15
    assert (await s.record(s.event("dan", SHARE, target_id="s2"))).points_awarded == 10
    # Holds, then their reviews.
    rules = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules
    rules.abuse.velocity_max_events_per_minute = 1
    await s.stub.UpdateRules(pb.UpdateRulesRequest(request_id="r-velocity", rules=rules), metadata=ADMIN)
    likes = [s.event("bob", LIKE, target_id=f"v{i}") for i in range(3)]
    fast = [await s.record(e) for e in likes]
    assert [r.status for r in fast] == [AWARDED, HELD, HELD]
    await resolve(s, fast[1].held_earning_id, True)
    await resolve(s, fast[2].held_earning_id, False)
    with pytest.raises(grpc.aio.AioRpcError):  # resolved already: refused, nothing written
        await s.stub.ResolveHeldEarning(pb.ResolveHeldEarningRequest(
            request_id="rv-again", held_earning_id=fast[1].held_earning_id, approve=True), metadata=ADMIN)

    stored = await published(s, nc)
    [earned] = of(stored, "amy")
    assert summary(earned)[0:2] == ("points_earned", "amy")
    p = earned.points_earned
    assert (list(p.activity_event_ids), p.points) == ([e.event_id for e in batch], sum(r.points_awarded
                                                                                       for r in results))
    assert p.credit_id.startswith("earning-evs-") and p.batch_id
    bob = of(stored, "bob")
    assert [e.event_type for e in bob] == ["points_earned", "earning_held", "earning_held", "earning_resolved",
                                           "earning_resolved"]
    held_1, held_2 = fast[1].held_earning_id, fast[2].held_earning_id
    assert [summary(e) for e in bob[1:]] == [("earning_held", held_1, 1), ("earning_held", held_2, 1),
                                             ("earning_resolved", held_1, 2), ("earning_resolved", held_2, 2)]
    assert (bob[1].earning_held.points, bob[1].earning_held.reason, bob[1].earning_held.activity_event_id) == (
        2, "VELOCITY_LIMIT", likes[1].event_id)
    assert list(bob[0].points_earned.activity_event_ids) == [likes[0].event_id]
    assert (bob[3].earning_resolved.resolution, bob[3].earning_resolved.points, bob[3].earning_resolved.resolved_by) \
        == (events_pb2.EARNING_RESOLUTION_APPROVED, 2, "admin")
    assert (bob[4].earning_resolved.resolution, bob[4].earning_resolved.points) == (
        events_pb2.EARNING_RESOLUTION_REJECTED, 0)
    exhausted = [m.event for m in stored if m.event.event_type == "challenge_budget_exhausted"]
    assert sorted(summary(e) for e in exhausted) == sorted(
        [("challenge_budget_exhausted", by_join.challenge_id, 1), ("challenge_budget_exhausted",
                                                                   by_batch.challenge_id, 1)])
    for e in exhausted:
        assert e.user_id == "" and e.challenge_budget_exhausted.challenge_id == e.aggregate_id
        assert e.challenge_budget_exhausted.exhaust_time.ToDatetime(UTC) == s.clock.now()
    assert {e.challenge_budget_exhausted.budget_points for e in exhausted} == {20, 5}
    # The join's bonus is a credit but no batch: no points_earned for it. Dan's two shares: two batches.
    assert [e.event_type for e in of(stored, "cat")] == []
    assert [e.points_earned.points for e in of(stored, "dan")] == [15, 10]
    # Every point earned in batches is announced once: the events' points are the wallet's.
    await s.reconciled(lambda: _nothing_pending(s))
    assert sum(e.points_earned.points for e in of(stored, "amy")) == await s.balance("amy")


async def _nothing_pending(s: Suite) -> bool:
    return await sql(s, "SELECT count(*) FROM credits WHERE pending") == 0


async def test_a_batch_that_rolled_back_publishes_nothing(suite: Suite, nc: NatsClient) -> None:
    s = suite
    # The batch's rows and events are written; the commit then fails (a deferred trigger), so all roll back.
    async with commits_refused(s.earning.engine, "events", "NEW.event_id LIKE 'refused-%'"):
        with pytest.raises(grpc.aio.AioRpcError):
            await record_batch(s, [s.event("eve", LIKE, target_id="v1", event_id="refused-1"),
                                   s.event("eve", LIKE, target_id="v2")])
    assert await sql(s, "SELECT count(*) FROM outbox") == 0
    done = await record_batch(s, [s.event("eve", LIKE, target_id="v3")])
    assert [e.points_earned.activity_event_ids[0] for e in of(await published(s, nc), "eve")] == [done[0].event_id]


async def test_concurrent_earners_exhaust_a_budget_once(suite: Suite, nc: NatsClient) -> None:
    """Eight batches of eight joined users queue on the challenge row the test holds, then charge its
    budget at once: four fit, the fourth spends the last point, and exactly one event says so. The
    crossing is decided by the charge itself, under the row lock; one decided from the batch's read
    alone, without that lock, would be seen by several batches."""
    s = suite
    users = [f"racer{i}" for i in range(8)]
    challenge = await create_challenge(s, "ch-race", activity_types=[SHARE], sponsor="Brand",
                                       sponsor_budget_points=20)
    for user in users:
        await join(s, challenge.challenge_id, user)
    async with s.earning.engine.connect() as holder:
        await holder.execute(text("SELECT 1 FROM challenges WHERE challenge_id = :c FOR UPDATE"),
                             {"c": challenge.challenge_id})
        batches = [asyncio.ensure_future(record_batch(s, [s.event(u, SHARE, target_id="s")])) for u in users]
        await blocked_on_locks(s.earning.engine, len(batches))
        await holder.rollback()
        results = [r for rs in await asyncio.gather(*batches) for r in rs]
    assert sorted(r.points_awarded for r in results) == [10] * 4 + [15] * 4
    stored = await published(s, nc)
    exhausted = [m.event for m in stored if m.event.event_type == "challenge_budget_exhausted"]
    assert [summary(e) for e in exhausted] == [("challenge_budget_exhausted", challenge.challenge_id, 1)]
    assert await sql(s, "SELECT budget_exhaustions FROM challenges WHERE challenge_id = :c",
                     c=challenge.challenge_id) == 1


async def test_one_users_racing_batches_publish_in_the_order_of_their_commits(suite: Suite, nc: NatsClient) -> None:
    """Six batches of one user queue on the user's row the test holds, then commit one after another:
    the stream holds the user's points_earned in the outbox's order, with strictly growing versions."""
    s = suite
    await record_batch(s, [s.event("hot", LIKE, target_id="first")])  # the user's row exists
    async with s.earning.engine.connect() as holder:
        await holder.execute(text("SELECT 1 FROM user_state WHERE user_id = 'hot' FOR UPDATE"))
        batches = [asyncio.ensure_future(record_batch(s, [s.event("hot", LIKE, target_id=f"b{i}-{j}")
                                                          for j in range(2)])) for i in range(6)]
        await blocked_on_locks(s.earning.engine, len(batches))
        await holder.rollback()
        results = [r for rs in await asyncio.gather(*batches) for r in rs]
    events = of(await published(s, nc), "hot")
    assert [e.event_type for e in events] == ["points_earned"] * 7
    versions = [e.aggregate_version for e in events]
    assert versions == sorted(set(versions)) and versions[0] == 1
    async with s.earning.engine.connect() as conn:
        payloads = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.sequence))).scalars()
        in_outbox = [e.event_id for e in map(envelope_pb2.Event.FromString, payloads) if e.user_id == "hot"]
    assert [e.event_id for e in events] == in_outbox
    assert sum(e.points_earned.points for e in events[1:]) == sum(r.points_awarded for r in results) > 0
