"""Real concurrency (many gRPC calls at once against one server + PostgreSQL): never oversold."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from points.catalog.v1 import catalog_pb2 as pb
from points_platform.client import error_reason
from tests.catalog.conftest import Harness
from tests.support.wait import eventually

ACTIVE, COMMITTED, RELEASED, EXPIRED = (pb.RESERVATION_STATE_ACTIVE, pb.RESERVATION_STATE_COMMITTED,
                                        pb.RESERVATION_STATE_RELEASED, pb.RESERVATION_STATE_EXPIRED)


async def outcome(awaitable: Any) -> str:
    """"OK" or the error reason, so results can be counted."""
    try:
        await awaitable
        return "OK"
    except grpc.aio.AioRpcError as exc:
        return error_reason(exc) or exc.code().name


async def lock_waiters(h: Harness) -> int:
    """Sessions of the catalog's database waiting for a lock (another session holds it)."""
    async with h.started.engine.connect() as conn:
        return int((await conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ))).scalar_one())


async def reservation_totals(h: Harness, item_id: str) -> dict[int, int]:
    async with h.started.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT state, sum(quantity) FROM reservations WHERE item_id = :i GROUP BY state"), {"i": item_id}
        )
        return {int(state): int(total) for state, total in rows}


async def returned_units(h: Harness, item_id: str) -> int:
    async with h.started.engine.connect() as conn:
        return int((await conn.execute(
            text("SELECT coalesce(sum(returned_quantity), 0) FROM reservations WHERE item_id = :i"), {"i": item_id}
        )).scalar_one())


async def test_500_concurrent_reservations_of_100_units_sell_exactly_100(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=100)
    results = await asyncio.gather(*(outcome(h.reserve(item.item_id, user=f"user-{n}")) for n in range(500)))
    assert Counter(results) == {"OK": 100, "OUT_OF_STOCK": 400}
    assert await h.stock_row(item.item_id) == (100, 0, 100, 0)
    assert await reservation_totals(h, item.item_id) == {ACTIVE: 100}


async def test_one_user_racing_50_reservations_against_a_limit_of_3_gets_exactly_3(h: Harness) -> None:
    item = await h.create_item(per_user_limit=3)  # unlimited stock: only the per-user lock serializes
    results = await asyncio.gather(*(outcome(h.reserve(item.item_id, user="racer")) for _ in range(50)))
    assert Counter(results) == {"OK": 3, "PER_USER_LIMIT_REACHED": 47}
    assert await reservation_totals(h, item.item_id) == {ACTIVE: 3}
    # Other users are not affected by racer's limit.
    assert await outcome(h.reserve(item.item_id, user="someone-else")) == "OK"


async def test_commit_and_release_race_on_one_reservation_resolves_exactly_once(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=10)
    for _ in range(10):
        r = await h.reserve(item.item_id)
        calls = [h.commit(r) for _ in range(8)] + [h.release(r) for _ in range(8)]
        random.shuffle(calls)
        results = await asyncio.gather(*(outcome(c) for c in calls))
        final = (await h.call("GetReservation", pb.GetReservationRequest(reservation_id=r.reservation_id),
                              caller="redemption")).reservation.state
        ok = Counter(results)["OK"]
        assert final in (COMMITTED, RELEASED) and ok == 8
        loser = "RESERVATION_RELEASED" if final == RELEASED else "RESERVATION_ALREADY_COMMITTED"
        assert Counter(results)[loser] == 8, results
    totals = await reservation_totals(h, item.item_id)
    total, available, reserved, sold = await h.stock_row(item.item_id)
    assert (reserved, sold) == (0, totals.get(COMMITTED, 0)) and available + sold == total == 10


async def test_release_sweeper_and_commit_race_after_expiry(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=10)
    reservations = [await h.reserve(item.item_id, ttl=10) for _ in range(10)]
    h.clock.advance(10)
    calls: list[Any] = []
    for r in reservations:
        calls += [outcome(h.commit(r)), outcome(h.release(r)), outcome(h.release(r))]
    calls += [h.started.reservations.expire_due() for _ in range(4)]
    random.shuffle(calls)
    results = await asyncio.gather(*calls)
    reasons = Counter(r for r in results if isinstance(r, str))
    assert reasons["OK"] == 20  # every release succeeds (released, or found expired)
    assert reasons["RESERVATION_EXPIRED"] + reasons["RESERVATION_RELEASED"] == 10  # no commit got through
    assert sum(r for r in results if isinstance(r, int)) == (await reservation_totals(h, item.item_id)).get(EXPIRED, 0)
    assert await h.stock_row(item.item_id) == (10, 10, 0, 0)


async def test_mixed_load_ends_where_the_callers_were_told(h: Harness) -> None:
    """Reserve, commit, release, return and expire race; afterwards every reservation is in the state
    its callers were told, and the stock row is the sum of what they were told."""
    item = await h.create_item(limited_stock=True, stock_total=60)
    told: dict[str, tuple[int, int]] = {}  # reservation id -> (state the callers were told, quantity)
    returned = 0  # units ReturnStock said it returned

    async def customer(n: int) -> None:
        nonlocal returned
        try:
            r = await h.reserve(item.item_id, user=f"mix-{n}", quantity=1 + n % 3, ttl=5 if n % 5 == 0 else 300)
        except grpc.aio.AioRpcError as exc:
            assert error_reason(exc) == "OUT_OF_STOCK", exc.details()
            return
        told[r.reservation_id] = (ACTIVE if n % 5 else EXPIRED, r.quantity)  # unless committed or released
        action = n % 4
        if action == 0:
            if await outcome(h.commit(r)) == "OK":
                told[r.reservation_id] = (COMMITTED, r.quantity)
                if n % 8 == 0:
                    # Refund-style returns (all, or one unit) race with everything else; some twice.
                    for _ in range(1 + n % 3):
                        try:
                            reply = await h.call("ReturnStock", pb.ReturnStockRequest(
                                request_id=f"mix-return-{n}-{_}", reservation_id=r.reservation_id,
                                quantity=n % 16 // 8), caller="redemption")
                            returned += reply.quantity_returned
                        except grpc.aio.AioRpcError as exc:
                            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
        elif action == 1 and await outcome(h.release(r)) == "OK":
            told[r.reservation_id] = (RELEASED, r.quantity)

    await asyncio.gather(*(customer(n) for n in range(120)))
    h.clock.advance(5)
    await asyncio.gather(h.started.reservations.expire_due(), h.started.reservations.expire_due())

    async with h.started.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT reservation_id, state, quantity FROM reservations WHERE item_id = :i"), {"i": item.item_id}
        )
        stored = {r.reservation_id: (int(r.state), int(r.quantity)) for r in rows}
    assert stored == told
    assert returned > 0 and returned == await returned_units(h, item.item_id)
    units = Counter[int]()
    for state, quantity in told.values():
        units[state] += quantity
    total, available, reserved, sold = await h.stock_row(item.item_id)
    assert (reserved, sold) == (units[ACTIVE], units[COMMITTED] - returned)
    assert available + reserved + sold == total == 60


async def test_the_database_refuses_an_unbalanced_stock_row(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=5)
    for statement in (
        "UPDATE items SET stock_available = stock_available - 1 WHERE item_id = :i",
        "UPDATE items SET stock_available = -1, stock_sold = stock_sold + 6 WHERE item_id = :i",
    ):
        with pytest.raises(IntegrityError):
            async with h.started.engine.begin() as conn:
                await conn.execute(text(statement), {"i": item.item_id})


async def test_a_reservation_waits_for_an_update_adding_a_per_user_limit(h: Harness) -> None:
    """A fast-path reservation (item without a limit) that meets an UpdateItem in progress adding a
    per-user limit waits for it, then is judged by the new limit. Without the wait it committed
    beside the update, unseen by a same-user reservation counting under the new limit."""
    item = await h.create_item()  # unlimited stock, no per-user limit: the fast path
    await h.reserve(item.item_id, user="limited")
    async with h.started.engine.connect() as conn:
        # What UpdateItem does, held open: lock the row, write the new spec and version.
        await conn.execute(text("SELECT 1 FROM items WHERE item_id = :i FOR UPDATE"), {"i": item.item_id})
        await conn.execute(
            text("UPDATE items SET per_user_limit = 1, per_user_limit_window = :w, version = version + 1"
                 " WHERE item_id = :i"),
            {"i": item.item_id, "w": pb.PER_USER_LIMIT_WINDOW_LIFETIME},
        )
        racer = asyncio.ensure_future(outcome(h.reserve(item.item_id, user="limited")))

        async def racer_done_or_waiting_for_a_lock() -> bool:
            return racer.done() or await lock_waiters(h) > 0

        await eventually(racer_done_or_waiting_for_a_lock)
        assert not racer.done(), "the reservation went past an update in progress"
        await conn.commit()
    assert await racer == "PER_USER_LIMIT_REACHED"
    assert await reservation_totals(h, item.item_id) == {ACTIVE: 1}
