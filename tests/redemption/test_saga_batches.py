"""Group commit of saga writes: concurrent creations and transitions share statements, and each saga's
outcome in a batch is exactly what its own statement would have given (lease, expected step, step log,
entitlements, request-id idempotency)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from points.events.v1 import envelope_pb2
from points_platform.clock import ManualClock
from points_platform.db import create_engine, migrate
from points_platform.outbox import Outbox
from points_platform.unit_of_work import Transactions
from redemption.domain.entitlements import EntitlementKind, EntitlementState
from redemption.domain.saga import Outcome, Saga, State, Step
from redemption.main import MIGRATIONS
from redemption.store.events import PARTITIONS, SERVICE, RedemptionEvents
from redemption.store.saga_batches import distinct_runs
from redemption.store.sagas import SagaStore
from redemption.store.tables import entitlements, outbox, saga_steps
from redemption.use_cases.records import EntitlementRow, Transition
from tests.conftest import NewDatabase

NOW = datetime(2030, 1, 1, tzinfo=UTC)
OWNER = "owner-a"


@pytest.fixture(scope="module")
async def engine(new_database: NewDatabase) -> AsyncIterator[AsyncEngine]:
    url = await new_database("saga_batches")
    await migrate(url, MIGRATIONS)
    engine = create_engine(url, pool_size=4)
    yield engine
    await engine.dispose()


def saga_store(engine: AsyncEngine) -> SagaStore:
    return SagaStore(Transactions(engine), RedemptionEvents(Outbox(outbox, SERVICE, PARTITIONS, ManualClock(NOW))))


async def outbox_events(engine: AsyncEngine, redemption_ids: list[str]) -> list[envelope_pb2.Event]:
    """The outbox's events about these redemptions (their grants and terminal states), in sequence order."""
    async with engine.connect() as conn:
        payloads = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.sequence))).scalars()
        events = [envelope_pb2.Event.FromString(p) for p in payloads]
    return [e for e in events if getattr(e, e.event_type).redemption_id in redemption_ids]


def new_saga() -> Saga:
    return Saga(uuid.uuid4().hex, f"user-{uuid.uuid4().hex[:6]}", "item-1", 2, "US", "", step=Step.RESERVE_STOCK)


async def created(store: SagaStore, count: int) -> list[Saga]:
    sagas = [new_saga() for _ in range(count)]
    results = await asyncio.gather(*(
        store.create(s, uuid.uuid4().hex, "fp", NOW, OWNER, NOW + timedelta(seconds=15)) for s in sagas))
    assert all(was_created for _, was_created in results)
    return sagas


async def move(store: SagaStore, saga: Saga, *, owner: str = OWNER, note: str = "",
               grant: list[EntitlementRow] | None = None) -> bool:
    after = replace(saga, step=Step.HOLD_FUNDS, reservation_id=f"res-{saga.redemption_id}")
    logs = [(Step.RESERVE_STOCK, Outcome.SUCCEEDED, note)]
    return await store.transition(Transition.of(saga, after, logs, NOW, grant or ()), owner=owner, lease_seconds=15)


async def step_log(engine: AsyncEngine, redemption_id: str) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(saga_steps.c.name, saga_steps.c.outcome, saga_steps.c.detail)
                                  .where(saga_steps.c.redemption_id == redemption_id).order_by(saga_steps.c.id))
        return [tuple(r) for r in rows]


def test_distinct_runs_split_only_at_a_repeat() -> None:
    class Op:
        def __init__(self, key: str) -> None:
            self.key = key

    ops = [Op(k) for k in "abcaab"]
    assert distinct_runs(ops, "key") == [[0, 1, 2], [3], [4, 5]]
    assert distinct_runs([], "key") == [[]]


async def test_concurrent_transitions_share_one_statement_and_each_moves_exactly_once(engine: AsyncEngine) -> None:
    store = saga_store(engine)
    sagas = await created(store, 8)
    assert store.creations.batches == 1
    stale = sagas[3]
    results = await asyncio.gather(*(
        move(store, s, owner="someone-else" if s is stale else OWNER, note=s.redemption_id) for s in sagas))
    assert store.moves.batches == 1 and store.moves.largest_batch == 8
    assert results == [s is not stale for s in sagas]
    for saga in sagas:
        record = await store.get(saga.redemption_id)
        assert record is not None
        if saga is stale:  # not its lease: neither the row nor the log moved
            assert record.saga.step is Step.RESERVE_STOCK and record.saga.reservation_id == ""
            assert await step_log(engine, saga.redemption_id) == [("RESERVE_STOCK", "STARTED", "")]
        else:
            assert record.saga.step is Step.HOLD_FUNDS and record.saga.reservation_id == f"res-{saga.redemption_id}"
            assert record.update_time == NOW and record.saga.state is State.PENDING
            assert await step_log(engine, saga.redemption_id) == [
                ("RESERVE_STOCK", "STARTED", ""), ("RESERVE_STOCK", "SUCCEEDED", saga.redemption_id),
                ("HOLD_FUNDS", "STARTED", "")]


async def test_two_moves_of_one_saga_in_a_batch_one_wins(engine: AsyncEngine) -> None:
    store = saga_store(engine)
    [saga] = await created(store, 1)
    results = await asyncio.gather(move(store, saga, note="first"), move(store, saga, note="second"))
    assert sorted(results) == [False, True]
    winner = "first" if results[0] else "second"
    assert await step_log(engine, saga.redemption_id) == [
        ("RESERVE_STOCK", "STARTED", ""), ("RESERVE_STOCK", "SUCCEEDED", winner), ("HOLD_FUNDS", "STARTED", "")]


async def test_same_request_id_twice_in_a_batch_creates_one_saga(engine: AsyncEngine) -> None:
    store = saga_store(engine)
    first, second = new_saga(), new_saga()
    lease = NOW + timedelta(seconds=15)
    (a, a_created), (b, b_created) = await asyncio.gather(
        store.create(first, "same-key", "fp", NOW, OWNER, lease),
        store.create(second, "same-key", "fp", NOW, OWNER, lease))
    assert (a_created, b_created) == (True, False)
    assert a.saga.redemption_id == b.saga.redemption_id == first.redemption_id
    assert await store.get(second.redemption_id) is None


async def test_grants_are_written_only_for_sagas_that_moved(engine: AsyncEngine) -> None:
    store = saga_store(engine)
    sagas = await created(store, 3)

    def rows(saga: Saga) -> list[EntitlementRow]:
        return [EntitlementRow(uuid.uuid4().hex, saga.user_id, saga.redemption_id, unit,
                               EntitlementKind.RAFFLE_TICKET, saga.item_id, EntitlementState.ACTIVE, None, "raffle-1",
                               "", "", "", "", NOW, 0, False, 0, None)
                for unit in range(saga.quantity)]

    grants = {s.redemption_id: rows(s) for s in sagas}
    results = await asyncio.gather(*(
        move(store, s, owner="someone-else" if i == 1 else OWNER, grant=grants[s.redemption_id])
        for i, s in enumerate(sagas)))
    assert results == [True, False, True]
    async with engine.connect() as conn:
        stored = (await conn.execute(
            select(entitlements.c.redemption_id, entitlements.c.entitlement_id, entitlements.c.unit,
                   entitlements.c.user_id, entitlements.c.raffle_id)
            .where(entitlements.c.redemption_id.in_(list(grants))))).all()
    expected = {(s.redemption_id, g.entitlement_id, g.unit, s.user_id, "raffle-1")
                for i, s in enumerate(sagas) if i != 1 for g in grants[s.redemption_id]}
    assert {tuple(r) for r in stored} == expected
    # One entitlement_granted per unit granted, in the grant's statement: none for the saga that did not move.
    granted = await outbox_events(engine, [s.redemption_id for s in sagas])
    assert [(e.event_type, e.entitlement_granted.redemption_id, e.aggregate_id, e.aggregate_version, e.user_id)
            for e in granted] == [
        ("entitlement_granted", s.redemption_id, g.entitlement_id, 1, s.user_id)
        for i, s in enumerate(sagas) if i != 1 for g in grants[s.redemption_id]]
    # A retried grant (same saga, new entitlement ids) adds nothing: (redemption_id, unit) is taken.
    again = replace(sagas[0], step=Step.HOLD_FUNDS)
    retried = Transition.of(again, replace(again, step=Step.COMMIT_FUNDS), [], NOW, rows(sagas[0]))
    assert await store.transition(retried, owner=OWNER, lease_seconds=15)
    async with engine.connect() as conn:
        count = len((await conn.execute(select(entitlements.c.entitlement_id).where(
            entitlements.c.redemption_id == sagas[0].redemption_id))).all())
    assert count == sagas[0].quantity
    assert len(await outbox_events(engine, [sagas[0].redemption_id])) == sagas[0].quantity  # nor any event
