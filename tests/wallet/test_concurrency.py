"""Real concurrency: many gRPC calls at once against the real server and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from sqlalchemy import text

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.client import error_reason
from tests.wallet.conftest import COINS, DIAMONDS, POINTS, Client


async def outcome(coro: Any) -> str:
    try:
        await coro
        return "ok"
    except grpc.aio.AioRpcError as exc:
        return error_reason(exc)


async def test_200_debits_and_holds_race_for_100(wallet: Client) -> None:
    await wallet.fund("racer", 100)
    debit = wallet.call("Debit", "redemption")
    hold = wallet.call("Reserve", "redemption")
    calls = [
        debit(pb.DebitRequest(request_id=f"race-d-{i}", user_id="racer", currency=POINTS, amount=1))
        if i % 2
        else hold(pb.ReserveRequest(request_id=f"race-h-{i}", user_id="racer", currency=POINTS, amount=1))
        for i in range(200)
    ]
    results = await asyncio.gather(*(outcome(c) for c in calls))
    assert results.count("ok") == 100
    assert set(results) == {"ok", "INSUFFICIENT_FUNDS"}
    available, held = await wallet.balance("racer")
    assert available == 0
    assert held == sum(1 for i, r in enumerate(results) if r == "ok" and i % 2 == 0)


async def test_concurrent_retries_of_one_request_apply_once(wallet: Client) -> None:
    credit = wallet.call("Credit", "earning")
    request = pb.CreditRequest(request_id="same-key", user_id="dup", currency=POINTS, amount=7)
    replies = await asyncio.gather(*(credit(request) for _ in range(50)))
    assert len({r.transaction.transaction_id for r in replies}) == 1
    assert await wallet.balance("dup") == (7, 0)


async def test_1000_gifts_to_one_creator_sum_exactly(wallet: Client) -> None:
    credit = wallet.call("Credit", "payments")
    await asyncio.gather(
        *(
            credit(
                pb.CreditRequest(
                    request_id=f"buy-{i}",
                    user_id=f"viewer-{i}",
                    currency=COINS,
                    amount=10 + i % 7,
                    reference=f"pay-{i}",
                )
            )
            for i in range(1000)
        )
    )
    batches_before = wallet.started.wallet.ledger.committer.batches
    gift = wallet.call("SendGift", "app")
    # Every 10th viewer sends more coins than they have: those fail alone, the rest still land.
    replies = await asyncio.gather(
        *(
            outcome(
                gift(
                    pb.SendGiftRequest(
                        request_id=f"gift-{i}",
                        sender_id=f"viewer-{i}",
                        creator_id="hot-creator",
                        coins=(10 + i % 7) * (100 if i % 10 == 0 else 1),
                        gift_id="rose",
                    )
                )
            )
            for i in range(1000)
        )
    )
    assert replies.count("INSUFFICIENT_FUNDS") == 100 and replies.count("ok") == 900
    expected = sum((10 + i % 7) * 5000 // 10_000 for i in range(1000) if i % 10)
    assert await wallet.balance("hot-creator", DIAMONDS) == (expected, 0)
    # Group commit did coalesce: far fewer DB transactions than gifts.
    assert wallet.started.wallet.ledger.committer.batches - batches_before < 900
    async with wallet.engine.connect() as conn:
        creator_postings = (
            await conn.execute(text("SELECT count(*), sum(amount) FROM postings WHERE account = 'user:hot-creator'"))
        ).one()
    assert tuple(creator_postings) == (900, expected)


async def test_concurrent_retries_of_one_hold_request_apply_once(wallet: Client) -> None:
    """Same-key Reserve/CommitHold/ReleaseHold retries racing: one effect, every caller gets its
    answer (the unique violation and the hold's compare-and-set make the losers replay)."""
    await wallet.fund("dup-hold", 100)
    reserve = wallet.call("Reserve", "redemption")
    commit = wallet.call("CommitHold", "redemption")
    release = wallet.call("ReleaseHold", "redemption")
    request = pb.ReserveRequest(request_id="dup-r", user_id="dup-hold", currency=POINTS, amount=10)
    held = await asyncio.gather(*(reserve(request) for _ in range(20)))
    assert len({r.hold.hold_id for r in held}) == 1
    assert await wallet.balance("dup-hold") == (90, 10)
    hold_id = held[0].hold.hold_id
    committed = await asyncio.gather(
        *(commit(pb.CommitHoldRequest(request_id="dup-c", hold_id=hold_id, amount=4)) for _ in range(20))
    )
    assert all(r == committed[0] for r in committed)
    assert committed[0].hold.committed_amount == 4 and committed[0].balance.available == 96
    other = await reserve(pb.ReserveRequest(request_id="dup-r2", user_id="dup-hold", currency=POINTS, amount=6))
    released = await asyncio.gather(
        *(release(pb.ReleaseHoldRequest(request_id="dup-l", hold_id=other.hold.hold_id)) for _ in range(20))
    )
    assert all(r == released[0] for r in released)
    assert released[0].hold.state == pb.HOLD_STATE_RELEASED
    assert await wallet.balance("dup-hold") == (96, 0)
    async with wallet.started.engine.connect() as conn:
        txns = (await conn.execute(text("SELECT count(*) FROM transactions WHERE request_id = 'dup-c'"))).scalar()
    assert txns == 1


async def test_concurrent_retries_of_a_debit_of_the_whole_balance_all_replay(wallet: Client) -> None:
    """Retries racing the original of a debit that empties the account: a batch that looked the key
    up before the original committed must not answer INSUFFICIENT_FUNDS (the debit did apply)."""
    for round_ in range(5):
        user = f"whole-debit-{round_}"
        await wallet.fund(user, 100)
        debit = wallet.call("Debit", "redemption")
        request = pb.DebitRequest(request_id=f"whole-d-{round_}", user_id=user, currency=POINTS, amount=100)
        results = await asyncio.gather(*(outcome(debit(request)) for _ in range(30)))
        assert set(results) == {"ok"}, results
        assert await wallet.balance(user) == (0, 0)


async def test_concurrent_retries_of_a_reserve_of_the_whole_balance_all_replay(wallet: Client) -> None:
    """Same for Reserve: a retry whose conditional UPDATE waited for the original must replay it."""
    for round_ in range(5):
        user = f"whole-hold-{round_}"
        await wallet.fund(user, 100)
        reserve = wallet.call("Reserve", "redemption")
        request = pb.ReserveRequest(request_id=f"whole-r-{round_}", user_id=user, currency=POINTS, amount=100)
        results = await asyncio.gather(*(outcome(reserve(request)) for _ in range(30)))
        assert set(results) == {"ok"}, results
        assert await wallet.balance(user) == (0, 100)


async def test_same_key_other_params_beside_a_refused_first_call_is_retryable_not_key_reuse(wallet: Client) -> None:
    """Two calls with one request_id but different amounts land in one batch; the first is
    refused (nothing is stored under the key), so the second was never judged: ABORTED, and
    alone it is then evaluated on its own parameters."""
    from points_platform.errors import AlreadyExists, DomainError
    from wallet.use_cases.commands import Debit

    await wallet.fund("twin", 50)
    use_cases = wallet.started.wallet.ledger
    too_much = Debit(request_id="twin-key", user_id="twin", currency=POINTS, amount=100)
    fits = Debit(request_id="twin-key", user_id="twin", currency=POINTS, amount=30)
    first, second = await asyncio.gather(
        use_cases.debit(too_much, "redemption"), use_cases.debit(fits, "redemption"), return_exceptions=True
    )
    assert isinstance(first, DomainError) and first.reason == "INSUFFICIENT_FUNDS"
    assert isinstance(second, DomainError) and not isinstance(second, AlreadyExists)
    assert second.reason == "CONCURRENT_REQUEST"
    retried = await use_cases.debit(fits, "redemption")
    assert retried.transaction.request_id == "twin-key"
    assert await wallet.balance("twin") == (20, 0)
