"""Crash safety: SIGKILL a wallet process mid-load, restart it, retry every request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from points.wallet.v1 import wallet_pb2 as pb
from points.wallet.v1 import wallet_pb2_grpc
from points_platform.client import bearer
from points_platform.db import create_engine
from points_platform.embedded_pg import free_port
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.wait import HANG_SECONDS, wait_serving
from tests.wallet.conftest import COINS, POINTS, check_invariants

pytestmark = pytest.mark.slow


def launch(url: str, port: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "POINTS_WALLET_DATABASE_URL": url,
        "POINTS_WALLET_PORT": str(port),
        "POINTS_WALLET_TOKENS_JSON": json.dumps(TOKENS),
        "POINTS_WALLET_LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "wallet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def requests() -> list[tuple[str, Any, str]]:
    ops: list[tuple[str, Any, str]] = []
    for i in range(400):
        user = f"u{i % 40}"
        earned = pb.CreditRequest(request_id=f"k-c-{i}", user_id=user, currency=POINTS, amount=1 + i % 9)
        ops.append(("Credit", earned, "earning"))
        if i % 4 == 0:
            spent = pb.DebitRequest(request_id=f"k-d-{i}", user_id=user, currency=POINTS, amount=1)
            ops.append(("Debit", spent, "redemption"))
        if i % 5 == 0:
            bought = pb.CreditRequest(
                request_id=f"k-p-{i}", user_id=user, currency=COINS, amount=20, reference=f"pay-{i}"
            )
            ops.append(("Credit", bought, "payments"))
            gift = pb.SendGiftRequest(request_id=f"k-g-{i}", sender_id=user, creator_id="creator", coins=4)
            ops.append(("SendGift", gift, "app"))
    return ops


async def fire(
    port: int, ops: list[tuple[str, Any, str]], answered: dict[str, Any] | None = None,
    kill_at: tuple[int, asyncio.Event] | None = None,
) -> dict[str, Any]:
    """Every op once, 32 in flight; `kill_at` (n, event): the event is set at the n-th answer."""
    answered = {} if answered is None else answered
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        limit = asyncio.Semaphore(32)

        async def one(method: str, request: Any, caller: str) -> None:
            async with limit:
                try:
                    answered[request.request_id] = await getattr(stub, method)(
                        request, metadata=bearer(TOKENS[caller]), timeout=10
                    )
                    if kill_at and len(answered) >= kill_at[0]:
                        kill_at[1].set()
                except grpc.aio.AioRpcError:
                    pass  # killed mid-call, or a business error: the retry tells

        await asyncio.gather(*(one(*op) for op in ops))
    return answered


async def test_sigkill_mid_load_loses_nothing_and_applies_nothing_twice(new_database: NewDatabase) -> None:
    url = await new_database("wallet_crash")
    port = free_port()
    ops = requests()
    process = launch(url, port)
    try:
        await wait_serving(port)
        before: dict[str, Any] = {}
        answered_150 = asyncio.Event()
        load = asyncio.create_task(fire(port, ops, before, (150, answered_150)))
        await asyncio.wait_for(answered_150.wait(), HANG_SECONDS)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        await load
        process = launch(url, port)
        await wait_serving(port)
        after = await fire(port, ops)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert 0 < len(before) < len(ops), "the kill should land mid-load"
    # Every request answered before the crash is replayed with the very same transaction.
    for rid, reply in before.items():
        assert after[rid].transaction.transaction_id == reply.transaction.transaction_id
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            applied = (await conn.execute(text(  # a transaction has a row per user it touches
                "SELECT request_id FROM transactions GROUP BY transaction_id, request_id"
            ))).scalars().all()
            credited = (
                await conn.execute(
                    text(
                        "SELECT coalesce(sum(amount), 0) FROM postings"
                        " WHERE account = 'user:' || user_id AND currency = 1 AND amount > 0"
                    )
                )
            ).scalar()
        assert len(applied) == len(set(applied)), "a request was applied twice"
        assert set(applied) == set(after), "every successful request has exactly its one transaction"
        assert credited == sum(r.amount for m, r, _ in ops if m == "Credit" and r.currency == POINTS)
        await check_invariants(engine)
    finally:
        await engine.dispose()
