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
            credit(pb.CreditRequest(request_id=f"buy-{i}", user_id=f"viewer-{i}", currency=COINS, amount=10 + i % 7, reference=f"pay-{i}"))
            for i in range(1000)
        )
    )
    batches_before = wallet.started.wallet.committer.batches
    gift = wallet.call("SendGift", "app")
    # Every 10th viewer sends more coins than they have: those fail alone, the rest still land.
    replies = await asyncio.gather(
        *(
            outcome(gift(pb.SendGiftRequest(request_id=f"gift-{i}", sender_id=f"viewer-{i}", creator_id="hot-creator", coins=(10 + i % 7) * (100 if i % 10 == 0 else 1), gift_id="rose")))
            for i in range(1000)
        )
    )
    assert replies.count("INSUFFICIENT_FUNDS") == 100 and replies.count("ok") == 900
    expected = sum((10 + i % 7) * 5000 // 10_000 for i in range(1000) if i % 10)
    assert await wallet.balance("hot-creator", DIAMONDS) == (expected, 0)
    # Group commit did coalesce: far fewer DB transactions than gifts.
    assert wallet.started.wallet.committer.batches - batches_before < 900
    async with wallet.engine.connect() as conn:
        creator_postings = (
            await conn.execute(text("SELECT count(*), sum(amount) FROM postings WHERE user_id = 'hot-creator'"))
        ).one()
    assert tuple(creator_postings) == (900, expected)
