"""Points expiry (on in this module): lots, oldest-first spending, the expiry job, history,
holds on expiring lots, idempotent re-runs, spend racing the job, and the domain metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.client import error_reason
from points_platform.clock import ManualClock
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.wallet.conftest import COINS, POINTS, Client, check_invariants
from wallet.config import WalletSettings
from wallet.main import start

DAY = 86_400.0


async def check_lots(engine: AsyncEngine) -> None:
    """Every POINTS account here was credited with expiry on: its lots hold exactly its points."""
    async with engine.connect() as conn:
        drift = (
            await conn.execute(
                text(
                    "SELECT a.user_id, a.available + a.held AS points, coalesce(l.r, 0) AS lots FROM accounts a "
                    "LEFT JOIN (SELECT user_id, sum(remaining) AS r FROM points_lots GROUP BY 1) l USING (user_id) "
                    "WHERE a.currency = 1 AND a.available + a.held <> coalesce(l.r, 0)"
                )
            )
        ).all()
        assert drift == [], drift


@pytest.fixture(scope="module")
async def ewallet(new_database: NewDatabase) -> AsyncIterator[Client]:
    clock = ManualClock()
    settings = WalletSettings(
        database_url=await new_database("wallet"),
        port=0,
        tokens_json=json.dumps(TOKENS),
        db_pool_size=20,
        points_expiry_days=30,
    )
    started = await start(settings, clock=clock, sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        yield Client(channel, started, clock)
        await check_invariants(started.engine)
        await check_lots(started.engine)
    finally:
        await channel.close()
        await started.stop()


async def lots_of(wallet: Client, user: str) -> list[tuple[int, int, int]]:
    async with wallet.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT amount, remaining, expired FROM points_lots WHERE user_id = :u ORDER BY lot_id"), {"u": user}
        )
        return [tuple(r) for r in rows]


async def debit(wallet: Client, rid: str, user: str, amount: int) -> Any:
    return await wallet.call("Debit", "redemption")(
        pb.DebitRequest(request_id=rid, user_id=user, currency=POINTS, amount=amount, reason="redeem")
    )


async def reserve(wallet: Client, rid: str, user: str, amount: int) -> Any:
    reply = await wallet.call("Reserve", "redemption")(
        pb.ReserveRequest(request_id=rid, user_id=user, currency=POINTS, amount=amount, ttl_seconds=86_400)
    )
    return reply.hold


async def expire_all(wallet: Client) -> int:
    total = 0
    while posted := await wallet.started.wallet.expiry.expire_points():
        total += posted
    return total


async def test_oldest_lot_spent_first_and_expiry_posts_the_remainder(ewallet: Client) -> None:
    w = ewallet
    await w.fund("e1", 100, request_id="e1-a")  # lot A, expires at +30 d
    w.clock.advance(10 * DAY)
    await w.fund("e1", 50, request_id="e1-b")  # lot B, expires at +40 d
    await debit(w, "e1-d1", "e1", 70)
    assert await lots_of(w, "e1") == [(100, 30, 0), (50, 50, 0)]
    await debit(w, "e1-d1", "e1", 70)  # a replay consumes nothing again
    assert await lots_of(w, "e1") == [(100, 30, 0), (50, 50, 0)]

    w.clock.advance(20 * DAY - 1)
    assert await expire_all(w) == 0  # not yet
    w.clock.advance(1)
    assert await expire_all(w) == 1
    assert await w.balance("e1") == (50, 0)
    assert await lots_of(w, "e1") == [(100, 0, 30), (50, 50, 0)]
    assert await expire_all(w) == 0  # re-run: nothing twice

    history = await w.call("ListTransactions")(pb.ListTransactionsRequest(user_id="e1", currency=POINTS))
    newest = history.entries[0]
    assert (newest.kind, newest.amount, newest.reason, newest.balance_after) == (
        pb.TRANSACTION_KIND_EXPIRY, -30, "expiry", 50
    )
    credit_a = history.entries[-1]
    assert newest.reference == credit_a.transaction_id  # the credit whose lot expired

    w.clock.advance(10 * DAY)
    assert await expire_all(w) == 1
    assert await w.balance("e1") == (0, 0)
    async with w.engine.connect() as conn:
        expired = (
            await conn.execute(text("SELECT sum(amount) FROM postings WHERE account = 'system:forfeited'"))
        ).scalar()
        kinds = (
            await conn.execute(text("SELECT count(*) FROM transactions WHERE user_id = 'e1' AND kind = 6"))
        ).scalar()
    assert (expired, kinds) >= (80, 2) and kinds == 2
    await check_invariants(w.engine)
    await check_lots(w.engine)


async def test_hold_points_are_never_expired_and_commit_consumes_oldest(ewallet: Client) -> None:
    w = ewallet
    await w.fund("e2", 100, request_id="e2-a")  # lot A
    w.clock.advance(DAY)
    await w.fund("e2", 40, request_id="e2-b")  # lot B (a day younger)
    w.clock.advance(29 * DAY - 10)
    hold = await reserve(w, "e2-h", "e2", 120)  # holds live at most a day
    assert await w.balance("e2") == (20, 120)
    w.clock.advance(10)  # A expired, B not yet
    assert await expire_all(w) == 1
    assert await w.balance("e2") == (0, 120)  # only min(remaining, available) expired
    assert await lots_of(w, "e2") == [(100, 80, 20), (40, 40, 0)]
    reply = await w.call("CommitHold", "redemption")(
        pb.CommitHoldRequest(request_id="e2-c", hold_id=hold.hold_id, amount=90)
    )
    assert (reply.balance.available, reply.balance.held) == (30, 0)
    assert await lots_of(w, "e2") == [(100, 0, 20), (40, 30, 0)]  # 80 from A, then 10 from B
    assert await expire_all(w) == 0  # A is empty, B not due
    w.clock.advance(DAY)
    assert await expire_all(w) == 1
    assert await w.balance("e2") == (0, 0)

    # A released hold returns its points; the next run expires them.
    await w.fund("e2", 10, request_id="e2-c1")
    w.clock.advance(30 * DAY - 10)
    hold2 = await reserve(w, "e2-h2", "e2", 10)
    w.clock.advance(10)
    assert await expire_all(w) == 0
    await w.call("ReleaseHold", "redemption")(pb.ReleaseHoldRequest(request_id="e2-r2", hold_id=hold2.hold_id))
    assert await expire_all(w) == 1
    assert await w.balance("e2") == (0, 0)
    await check_lots(w.engine)


async def test_refunded_points_are_a_new_lot_expiring_after_the_ttl(ewallet: Client) -> None:
    w = ewallet
    await w.fund("e6", 100, request_id="e6-a")
    hold = await reserve(w, "e6-h", "e6", 60)
    await w.call("CommitHold", "redemption")(pb.CommitHoldRequest(request_id="e6-c", hold_id=hold.hold_id))
    assert await lots_of(w, "e6") == [(100, 40, 0)]
    w.clock.advance(20 * DAY)
    await w.call("RefundHold", "redemption")(pb.RefundHoldRequest(request_id="e6-r", hold_id=hold.hold_id, amount=25))
    assert await lots_of(w, "e6") == [(100, 40, 0), (25, 25, 0)]
    w.clock.advance(10 * DAY)  # the first lot is due, the refund's is 20 days younger
    assert await expire_all(w) == 1
    assert await w.balance("e6") == (25, 0)
    w.clock.advance(20 * DAY)
    assert await expire_all(w) == 1
    assert await w.balance("e6") == (0, 0)
    await check_lots(w.engine)


async def test_spend_racing_the_expiry_job(ewallet: Client) -> None:
    w = ewallet
    users = [f"e3-{u}" for u in range(4)]
    for day in range(10):  # ten lots of 10 per user, one a day
        await asyncio.gather(*(w.fund(u, 10, request_id=f"e3-{u}-{day}") for u in users))
        w.clock.advance(DAY)
    w.clock.advance(24.5 * DAY)  # lots of days 0-4 have expired (50 per user), 5-9 have not

    async def spend(rid: str, user: str) -> str:
        try:
            await debit(w, rid, user, 7)
            return "ok"
        except grpc.aio.AioRpcError as exc:
            return error_reason(exc)

    spends = [spend(f"e3-d-{u}-{i}", u) for u in users for i in range(12)]
    jobs = [w.started.wallet.expiry.expire_points() for _ in range(4)]
    results = await asyncio.gather(*spends, *jobs)
    outcomes = results[: len(spends)]
    assert set(outcomes) <= {"ok", "INSUFFICIENT_FUNDS"}
    await expire_all(w)
    async with w.engine.connect() as conn:
        expired: dict[str, Decimal] = dict(  # -sum(bigint) is numeric
            (await conn.execute(text("SELECT t.user_id, -sum(p.amount) FROM transactions t JOIN postings p USING "
                                     "(user_id, transaction_id) WHERE t.kind = 6 AND p.account = 'user:' || p.user_id"
                                     " GROUP BY 1"))).all()
        )
        overdue = (
            await conn.execute(text("SELECT count(*) FROM points_lots WHERE remaining > 0 AND expire_time <= :now"),
                               {"now": w.clock.now()})
        ).scalar()
    assert overdue == 0  # the job caught up
    for user in users:
        spent = 7 * sum(1 for r, s in zip(outcomes, [u for u in users for _ in range(12)], strict=True)
                        if s == user and r == "ok")
        available, held = await w.balance(user)
        assert available >= 0 and held == 0
        assert spent + expired.get(user, 0) + available == 100  # nothing lost, nothing counted twice
        assert expired.get(user, 0) <= 50  # only expired lots' remainders
        assert await lots_of(w, user) and sum(r for _, r, _ in await lots_of(w, user)) == available
    await check_invariants(w.engine)
    await check_lots(w.engine)


async def test_credit_and_debit_in_one_batch_make_and_spend_lots(ewallet: Client) -> None:
    w = ewallet
    await w.fund("e4", 5, request_id="e4-0")
    credits = [w.fund("e4", 10, request_id=f"e4-c{i}") for i in range(20)]
    spends = [debit(w, f"e4-d{i}", "e4", 3) for i in range(20)]
    results = await asyncio.gather(*credits, *spends, return_exceptions=True)
    ok_spends = sum(1 for r in results[20:] if not isinstance(r, BaseException))
    available, _ = await w.balance("e4")
    assert available == 205 - 3 * ok_spends
    await check_lots(w.engine)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_domain_metrics_count_committed_effects_once(ewallet: Client) -> None:
    w = ewallet
    credited = ("points_wallet_credited_total", {"currency": "POINTS", "reason_class": "earning"})
    debited = ("points_wallet_debited_total", {"currency": "POINTS", "reason_class": "redemption"})
    committed = ("points_wallet_debited_total", {"currency": "POINTS", "reason_class": "hold_commit"})
    expired = ("points_wallet_debited_total", {"currency": "POINTS", "reason_class": "expiry"})
    holds_ok = ("points_wallet_holds_total", {"currency": "POINTS", "state": "COMMITTED"})
    holds_rel = ("points_wallet_holds_total", {"currency": "POINTS", "state": "RELEASED"})
    gifted = ("points_wallet_gifted_total", {"currency": "DIAMONDS"})
    held_placed = ("points_wallet_held_amount_total", {"currency": "POINTS", "state": "ACTIVE"})
    held_released = ("points_wallet_held_amount_total", {"currency": "POINTS", "state": "RELEASED"})
    watched = [credited, debited, committed, expired, holds_ok, holds_rel, gifted, held_placed, held_released]
    before = [sample(n, **lb) for n, lb in watched]
    expired_before = await expired_in_ledger(w)

    await w.fund("m1", 100, request_id="m1-a")
    await w.fund("m1", 100, request_id="m1-a")  # replay: not counted again
    await debit(w, "m1-d", "m1", 30)
    with pytest.raises(grpc.aio.AioRpcError):
        await debit(w, "m1-d2", "m1", 1_000)  # refused: not counted
    h1 = await reserve(w, "m1-h1", "m1", 20)
    await w.call("CommitHold", "redemption")(pb.CommitHoldRequest(request_id="m1-c1", hold_id=h1.hold_id, amount=15))
    h2 = await reserve(w, "m1-h2", "m1", 5)
    await w.call("ReleaseHold", "redemption")(pb.ReleaseHoldRequest(request_id="m1-r2", hold_id=h2.hold_id))
    await w.fund("m1", 50, COINS)
    await w.call("SendGift", "app")(
        pb.SendGiftRequest(request_id="m1-g", sender_id="m1", creator_id="m2", coins=50, gift_id="rose")
    )
    w.clock.advance(31 * DAY)
    await expire_all(w)

    after = [sample(n, **lb) for n, lb in watched]
    expired_now = await expired_in_ledger(w) - expired_before  # m1's 55 and other tests' leftovers
    assert expired_now >= 55
    # held: 20 + 5 placed; released 5 by ReleaseHold and 5 left over by the partial commit of 15
    assert [a - b for a, b in zip(after, before, strict=True)] == [100, 30, 15, expired_now, 1, 1, 25, 25, 10]


async def expired_in_ledger(w: Client) -> int:
    async with w.engine.connect() as conn:
        total = (
            await conn.execute(text("SELECT coalesce(sum(amount), 0) FROM postings WHERE account = 'system:forfeited'"))
        ).scalar_one()
    return int(total)


async def test_a_forfeit_consumes_the_oldest_lots_and_posts_to_forfeited(ewallet: Client) -> None:
    """Forfeited points leave the lots like a spend (oldest first): expiry then takes only the rest."""
    w = ewallet
    await w.fund("f1", 40, request_id="f1-a")
    w.clock.advance(DAY)
    await w.fund("f1", 60, request_id="f1-b")
    await w.call("ForfeitPoints")(
        pb.ForfeitPointsRequest(request_id="f1-f", user_id="f1", amount=50, reason="rule change ignored", ticket="T-1")
    )
    assert await lots_of(w, "f1") == [(40, 0, 0), (60, 50, 0)]
    await w.call("ForfeitPoints")(
        pb.ForfeitPointsRequest(request_id="f1-all", user_id="f1", all=True, reason="fraud", ticket="T-2")
    )
    assert await lots_of(w, "f1") == [(40, 0, 0), (60, 0, 0)]
    await check_lots(w.engine)
