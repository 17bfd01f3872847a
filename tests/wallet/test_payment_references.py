"""A payment (COINS credit) is credited once per user, currency and reference, whatever its request id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from points.wallet.v1 import wallet_pb2 as pb
from points.wallet.v1 import wallet_pb2_grpc
from points_platform.client import bearer, error_info, error_reason
from points_platform.clock import ManualClock
from points_platform.db import create_engine, ensure_database
from points_platform.errors import DomainError
from points_platform.unit_of_work import Transactions
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.rpc import expect_error
from tests.wallet.conftest import COINS, POINTS, Client, check_invariants
from wallet.config import WalletSettings
from wallet.main import MIGRATIONS, start
from wallet.store import ledger
from wallet.use_cases import Credit
from wallet.use_cases.results import LedgerResult


def payment(request_id: str, user: str, reference: str, amount: int = 100) -> pb.CreditRequest:
    return pb.CreditRequest(request_id=request_id, user_id=user, currency=COINS, amount=amount,
                            reason="coin_purchase", reference=reference)


async def test_a_payment_is_credited_once_whatever_the_request_id(wallet: Client) -> None:
    credit = wallet.call("Credit", "payments")
    first = await credit(payment("pr-1", "payer", "psp-123"))
    refused = await expect_error(credit(payment("pr-2", "payer", "psp-123")), grpc.StatusCode.ALREADY_EXISTS,
                                 "PAYMENT_ALREADY_CREDITED")
    info = error_info(refused)
    assert info is not None
    assert dict(info.metadata) == {"reference": "psp-123", "transaction_id": first.transaction.transaction_id,
                                   "request_id": "pr-1"}
    # Another amount does not make it another payment; a retry of the first request replays it.
    await expect_error(credit(payment("pr-3", "payer", "psp-123", amount=5)), grpc.StatusCode.ALREADY_EXISTS,
                       "PAYMENT_ALREADY_CREDITED")
    assert await credit(payment("pr-1", "payer", "psp-123")) == first
    assert await wallet.balance("payer", COINS) == (100, 0)
    # The reference is unique per user: another user's payment may carry the same string.
    await credit(payment("pr-4", "other-payer", "psp-123"))
    assert await wallet.balance("other-payer", COINS) == (100, 0)
    # POINTS credits are not payments: earning may repeat a reference (an event paying two rules).
    earn = wallet.call("Credit", "earning")
    for rid in ("pe-1", "pe-2"):
        await earn(pb.CreditRequest(request_id=rid, user_id="payer", currency=POINTS, amount=3, reference="ev-1"))
    assert await wallet.balance("payer", POINTS) == (6, 0)


async def test_a_batch_with_a_repeated_payment_fails_only_that_entry(wallet: Client) -> None:
    """One ledger batch (one DB transaction) carrying a payment twice, a payment credited before and
    neighbours: the repeats fail alone, naming the first credit, and everything else applies."""
    uc = wallet.started.wallet.ledger
    await wallet.call("Credit", "payments")(payment("bb-0", "bb-u1", "psp-old"))
    commands = [
        (Credit("bb-1", "bb-u1", COINS, 10, "coin_purchase", "psp-a"), "payments"),
        (Credit("bb-2", "bb-u1", COINS, 10, "coin_purchase", "psp-a"), "payments"),  # same payment, new id
        (Credit("bb-3", "bb-u2", COINS, 20, "coin_purchase", "psp-a"), "payments"),  # another user
        (Credit("bb-4", "bb-u1", COINS, 30, "coin_purchase", "psp-old"), "payments"),  # credited before
        (Credit("bb-5", "bb-u1", POINTS, 40, "watch_time", "ev-1"), "earning"),
        (Credit("bb-6", "bb-u1", COINS, 50, "coin_purchase", "psp-b"), "payments"),
    ]
    ops = [uc._credit_op(cmd, caller) for cmd, caller in commands]
    outcomes = await ledger.apply_ledger_batch(Transactions(wallet.engine), ops, wallet.clock.now())
    reasons = [o.reason if isinstance(o, DomainError) else "ok" for o in outcomes]
    assert reasons == ["ok", "PAYMENT_ALREADY_CREDITED", "ok", "PAYMENT_ALREADY_CREDITED", "ok", "ok"]
    first = outcomes[0]
    assert isinstance(first, LedgerResult) and isinstance(outcomes[1], DomainError)
    assert outcomes[1].metadata["transaction_id"] == first.transaction.transaction_id
    assert outcomes[1].metadata["request_id"] == "bb-1"
    assert await wallet.balance("bb-u1", COINS) == (100 + 10 + 50, 0)
    assert await wallet.balance("bb-u2", COINS) == (20, 0)
    assert await wallet.balance("bb-u1", POINTS) == (40, 0)


async def test_twenty_concurrent_credits_of_one_payment_credit_once(new_database: NewDatabase) -> None:
    """Two wallet processes' worth of group committers on one database (their batches race on the
    account lock, so a batch can plan against a snapshot without the other's payment): 20 credits
    of one payment under 20 request ids, among 40 other payments, over 5 rounds."""
    url = await new_database("wallet")
    settings = WalletSettings(database_url=url, port=0, tokens_json=json.dumps(TOKENS), db_pool_size=10)
    clock = ManualClock()
    wallets = [await start(settings, clock=clock, sweeper=False) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{w.port}") for w in wallets]
    stubs = [wallet_pb2_grpc.WalletServiceStub(c) for c in channels]
    md = bearer(TOKENS["payments"])

    async def outcome(n: int, request: pb.CreditRequest) -> tuple[str, Any]:
        try:
            reply = await stubs[n % 2].Credit(request, metadata=md, timeout=30)
            return "ok", reply.transaction.transaction_id
        except grpc.aio.AioRpcError as exc:
            info = error_info(exc)
            return error_reason(exc), info.metadata["transaction_id"] if info else None

    try:
        for rnd in range(5):
            user, reference = f"buyer-{rnd}", f"psp-{rnd}"
            calls = [outcome(n, payment(f"c{rnd}-{n}", user, reference)) for n in range(20)]
            calls += [outcome(n, payment(f"n{rnd}-{n}", user if n % 2 else f"nb-{rnd}-{n}", f"other-{rnd}-{n}", 1))
                      for n in range(40)]
            results = await asyncio.gather(*calls)
            contested, neighbours = results[:20], results[20:]
            assert [r for r, _ in contested].count("ok") == 1, contested
            assert {r for r, _ in contested} == {"ok", "PAYMENT_ALREADY_CREDITED"}
            assert len({tid for _, tid in contested}) == 1  # every refusal names the one credit
            assert all(r == "ok" for r, _ in neighbours), neighbours
            reply = await stubs[0].GetBalance(pb.GetBalanceRequest(user_id=user, currency=COINS), metadata=md)
            assert reply.balances[0].available == 100 + 20
        engine = wallets[0].engine
        async with engine.connect() as conn:
            credits = (await conn.execute(text(
                "SELECT t.reference, count(*) FROM transactions t WHERE t.reference LIKE 'psp-%' GROUP BY 1"))).all()
        assert sorted(credits) == [(f"psp-{rnd}", 1) for rnd in range(5)]
        await check_invariants(engine)
    finally:
        for channel in channels:
            await channel.close()
        for w in wallets:
            await w.stop()


def _upgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, revision)


async def test_the_migration_carries_existing_payments_over_first_credit_first(new_database: NewDatabase) -> None:
    """Credits made before the rule, duplicates included: the first credit of each payment owns its
    reference, later duplicates stay in the ledger, and a new credit of it is refused."""
    url = await new_database("wallet")
    await ensure_database(url)
    await asyncio.to_thread(_upgrade, url, "0004")
    engine = create_engine(url)
    rows = [  # transaction, user, currency, reference, time (seconds), request id
        ("t-late", "mu1", 2, "psp-1", 20, "r-late"),
        ("t-first", "mu1", 2, "psp-1", 10, "r-first"),
        ("t-q", "mu1", 2, "psp-2", 30, "r-q"),
        ("t-u2", "mu2", 2, "psp-1", 40, "r-u2"),
        ("t-points", "mu1", 1, "psp-1", 5, "r-points"),  # POINTS: not a payment
    ]
    try:
        async with engine.begin() as conn:
            for tid, user, currency, ref, seconds, rid in rows:
                await conn.execute(text(
                    "INSERT INTO transactions VALUES (:t, :u, :r, 1, 'coin_purchase', :ref, "
                    "timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => :s))"),
                    {"t": tid, "u": user, "r": rid, "ref": ref, "s": seconds})
                source = "system:coin_sales" if currency == 2 else "system:points_issuance"
                await conn.execute(text(
                    "INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after) "
                    "VALUES (:t, '', :src, :c, -5, NULL), (:t, :u, 'user:' || :u, :c, 5, 5)"),
                    {"t": tid, "u": user, "c": currency, "src": source})
        await asyncio.to_thread(_upgrade, url, "head")
        async with engine.connect() as conn:
            carried = (await conn.execute(text(
                "SELECT user_id, currency, reference, transaction_id, request_id FROM payment_references "
                "ORDER BY 1, 3"))).all()
        assert [tuple(r) for r in carried] == [
            ("mu1", 2, "psp-1", "t-first", "r-first"), ("mu1", 2, "psp-2", "t-q", "r-q"),
            ("mu2", 2, "psp-1", "t-u2", "r-u2"),
        ]
    finally:
        await engine.dispose()
    started = await start(WalletSettings(database_url=url, port=0, tokens_json=json.dumps(TOKENS)),
                          clock=ManualClock(), sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        refused = await expect_error(
            stub.Credit(payment("r-new", "mu1", "psp-1"), metadata=bearer(TOKENS["payments"])),
            grpc.StatusCode.ALREADY_EXISTS, "PAYMENT_ALREADY_CREDITED")
        info = error_info(refused)
        assert info is not None and info.metadata["transaction_id"] == "t-first"
    finally:
        await channel.close()
        await started.stop()
