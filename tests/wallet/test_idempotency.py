"""The wallet's idempotency goes through the platform module (`points_platform.idempotency`): the
key is (user_id, request_id), replies are the RPCs' reply messages — proto bytes in the shared table,
or rebuilt from the `hold_requests` row a hold statement writes beside its effect — and migration
0007 carries the old (op, request_id) rows over so that old keys still replay and still refuse."""

from __future__ import annotations

import json
from typing import Any

import grpc
from sqlalchemy import text

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.clock import ManualClock
from points_platform.db import create_engine
from points_platform.idempotency import fingerprint_from_digest
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.schema import database_at
from tests.wallet.conftest import COINS, POINTS, Client
from wallet.api import mapping
from wallet.config import WalletSettings
from wallet.main import MIGRATIONS, start
from wallet.replies import full_method
from wallet.use_cases.commands import fingerprint


async def test_replies_are_the_rpcs_reply_messages_keyed_by_user(wallet: Client) -> None:
    credit = pb.CreditRequest(request_id="idem-c1", user_id="idem-u1", currency=POINTS, amount=40,
                              reason="watch")
    first = await wallet.call("Credit", "earning")(credit)
    assert await wallet.call("Credit", "earning")(credit) == first
    async with wallet.engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT user_id, method, fingerprint, reply FROM idempotency WHERE request_id = 'idem-c1'"
        ))).one()
    method = full_method("Credit")
    assert (row.user_id, row.method) == ("idem-u1", method)
    assert bytes(row.fingerprint) == fingerprint_from_digest(method, bytes.fromhex(fingerprint(mapping.credit(credit))))
    assert pb.CreditResponse.FromString(bytes(row.reply)) == first

    # One request id names one request of a user: another RPC with it is a reuse (within a storage:
    # hold calls are not compared with the shared table's, docs/wallet.md) ...
    debit = pb.DebitRequest(request_id="idem-c1", user_id="idem-u1", currency=POINTS, amount=1, reason="x")
    await wallet.expect_error(wallet.call("Debit")(debit), grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    # ... and the same request id of another user is another request.
    other = pb.CreditRequest(request_id="idem-c1", user_id="idem-u2", currency=POINTS, amount=5, reason="watch")
    assert (await wallet.call("Credit", "earning")(other)).balance.available == 5


async def test_hold_replies_are_rebuilt_from_the_rows_the_statement_wrote(wallet: Client) -> None:
    await wallet.fund("idem-h1", 500, COINS)
    reserve = pb.ReserveRequest(request_id="idem-r1", user_id="idem-h1", currency=COINS, amount=200,
                                reference="order-1")
    reserved = await wallet.call("Reserve", "redemption")(reserve)
    commit = pb.CommitHoldRequest(request_id="idem-k1", hold_id=reserved.hold.hold_id, amount=150, reason="order")
    committed = await wallet.call("CommitHold", "redemption")(commit)
    refund = pb.RefundHoldRequest(request_id="idem-f1", hold_id=reserved.hold.hold_id, amount=50, reason="refund")
    refunded = await wallet.call("RefundHold", "redemption")(refund)
    assert refunded.hold.refunded_amount == 50

    # Replays answer as the first calls did, though the hold has moved on since.
    assert await wallet.call("Reserve", "redemption")(reserve) == reserved
    assert await wallet.call("CommitHold", "redemption")(commit) == committed
    assert await wallet.call("RefundHold", "redemption")(refund) == refunded
    reused = pb.CommitHoldRequest(request_id="idem-k1", hold_id=reserved.hold.hold_id, amount=100, reason="order")
    await wallet.expect_error(wallet.call("CommitHold", "redemption")(reused), grpc.StatusCode.ALREADY_EXISTS,
                              "IDEMPOTENCY_KEY_REUSED")
    # A Reserve under the commit's key is another request of the user's hold calls: a reuse.
    again = pb.ReserveRequest(request_id="idem-k1", user_id="idem-h1", currency=COINS, amount=1)
    await wallet.expect_error(wallet.call("Reserve", "redemption")(again), grpc.StatusCode.ALREADY_EXISTS,
                              "IDEMPOTENCY_KEY_REUSED")

    async with wallet.engine.connect() as conn:
        folded = (await conn.execute(text(
            "SELECT request_id, method, hold_id, available, held, transaction_id FROM hold_requests"
            " WHERE user_id = 'idem-h1' ORDER BY method DESC"
        ))).all()
        tabled = (await conn.execute(text(
            "SELECT user_id, request_id, method FROM idempotency WHERE request_id LIKE 'idem-%' ORDER BY 1, 2"
        ))).all()
    hold_id = reserved.hold.hold_id
    assert [tuple(r) for r in folded] == [
        ("idem-r1", full_method("Reserve"), hold_id, 300, 200, None),
        ("idem-k1", full_method("CommitHold"), hold_id, 350, 0, committed.transaction.transaction_id),
    ]
    # RefundHold names no user but its hold id does: its key is (that user, request_id)
    # (store/idempotency.py).
    assert ("idem-h1", "idem-f1", full_method("RefundHold")) in [tuple(r) for r in tabled]


def _old_ledger(txn_id: str, rid: str, user: str, amount: int, available: int) -> dict[str, Any]:
    return {
        "transaction": {
            "transaction_id": txn_id, "request_id": rid, "kind": 2,
            "postings": [{"account": f"user:{user}", "user_id": user, "currency": 1, "amount": -amount},
                         {"account": "system:points_redemption", "user_id": "", "currency": 1, "amount": amount}],
            "create_time": "2026-11-01T10:00:00.250000+00:00", "reason": "shop", "reference": "order-9",
        },
        "balances": [{"user_id": user, "currency": 1, "available": available, "held": 0}],
        "gift_rate_bps": 0,
    }


async def test_the_upgrade_carries_old_replies_over(wallet: Client, new_database: NewDatabase) -> None:
    """A database at revision 0006 holding answers in the old table: after the upgrade (by starting
    a wallet on it) their keys replay the old answers through the RPCs and refuse other requests."""
    old_debit = pb.DebitRequest(request_id="old-d1", user_id="old-u1", currency=POINTS, amount=30, reason="shop",
                                reference="order-9")
    old_reserve = pb.ReserveRequest(request_id="old-r1", user_id="old-u1", currency=POINTS, amount=20,
                                    reference="order-10")
    old_hold = {
        "hold_id": "hold_old1", "user_id": "old-u1", "currency": 1, "amount": 20, "committed_amount": 0,
        "state": 1, "reference": "order-10", "expire_time": "2026-11-01T10:15:00+00:00",
        "create_time": "2026-11-01T10:00:00+00:00", "resolve_time": None, "refunded_amount": 0,
    }
    rows = [
        ("debit", old_debit.request_id, fingerprint(mapping.debit(old_debit)),
         _old_ledger("t-old-1", "old-d1", "old-u1", 30, 70)),
        ("reserve", old_reserve.request_id, fingerprint(mapping.reserve(old_reserve)),
         {"hold": old_hold, "balance": {"user_id": "old-u1", "currency": 1, "available": 50, "held": 20},
          "transaction": None}),
    ]

    url = await database_at(new_database, "wallet_0006", MIGRATIONS, "0006")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for op, rid, digest, body in rows:
                await conn.execute(
                    text("INSERT INTO idempotency (op, request_id, fingerprint, response, create_time)"
                         " VALUES (:op, :rid, :fp, :body, '2026-11-01T10:00:00+00:00')"),
                    {"op": op, "rid": rid, "fp": digest, "body": json.dumps(body)},
                )
            await conn.execute(text(
                "INSERT INTO holds (hold_id, user_id, currency, amount, committed_amount, state, reference,"
                " expire_time, create_time) VALUES ('hold_old1', 'old-u1', 1, 20, 0, 1, 'order-10',"
                " '2026-11-01T10:15:00+00:00', '2026-11-01T10:00:00+00:00')"
            ))
    finally:
        await engine.dispose()

    started = await start(WalletSettings(database_url=url, port=0, tokens_json=json.dumps(TOKENS)),
                          clock=ManualClock(), sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        upgraded = Client(channel, started, wallet.clock)
        # old-u1 has no balance here: only the carried-over replies can answer.
        debited = await upgraded.call("Debit")(old_debit)
        assert (debited.transaction.transaction_id, debited.balance.available, debited.transaction.reason) == (
            "t-old-1", 70, "shop",
        )
        assert debited.transaction.create_time.ToJsonString() == "2026-11-01T10:00:00.250Z"
        reserved = await upgraded.call("Reserve", "redemption")(old_reserve)
        assert (reserved.hold.hold_id, reserved.hold.state, reserved.balance.available, reserved.balance.held) == (
            "hold_old1", pb.HOLD_STATE_ACTIVE, 50, 20,
        )
        reused = pb.DebitRequest(request_id="old-d1", user_id="old-u1", currency=POINTS, amount=31, reason="shop")
        await upgraded.expect_error(upgraded.call("Debit")(reused), grpc.StatusCode.ALREADY_EXISTS,
                                    "IDEMPOTENCY_KEY_REUSED")
        async with started.engine.connect() as conn:
            assert (await conn.execute(text("SELECT to_regclass('idempotency_0006') IS NULL"))).scalar()
    finally:
        await channel.close()
        await started.stop()
