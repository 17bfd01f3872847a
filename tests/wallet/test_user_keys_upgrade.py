"""Migration 0009 (every per-user key carries user_id): a database at 0008 holding a credit, a gift, an
active hold and a pending payout — system legs under '', ids that name no user — upgrades (by starting
a wallet on it) to rows filed by user, whose ledger invariants hold, and whose old ids still work
through the RPCs; new ids name their user."""

from __future__ import annotations

import json

import grpc
from sqlalchemy import text

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.clock import ManualClock
from points_platform.db import create_engine
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.schema import database_at
from tests.wallet.conftest import COINS, DIAMONDS, POINTS, Client, check_invariants
from wallet.config import WalletSettings
from wallet.domain import id_owner
from wallet.main import MIGRATIONS, start

T0 = "'2026-11-01T10:00:00+00:00'"
# (transaction_id, user_id, kind, reference, legs: (user_id, account, currency, amount, balance_after))
_LEDGER = [
    ("t-credit", "u1", 1, "ev-1", [("", "system:points_issuance", 1, -100, None), ("u1", "user:u1", 1, 100, 100)]),
    ("t-coins", "s1", 1, "psp-1", [("", "system:coin_sales", 2, -10, None), ("s1", "user:s1", 2, 10, 10)]),
    ("t-gift", "s1", 4, "gift-1", [
        ("s1", "user:s1", 2, -10, 0), ("", "system:gift_conversion", 2, 5, None),
        ("", "system:gift_revenue", 2, 5, None), ("", "system:gift_conversion", 3, -5, None),
        ("c1", "user:c1", 3, 5, 5),
    ]),
]


async def _old_database(new_database: NewDatabase) -> str:
    url = await database_at(new_database, "wallet_0008", MIGRATIONS, "0008")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for tid, user, kind, ref, legs in _LEDGER:
                await conn.execute(text(
                    "INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference,"
                    f" create_time) VALUES (:t, :u, :t, :k, 'old', :r, {T0})"),
                    {"t": tid, "u": user, "k": kind, "r": ref})
                for leg_user, account, currency, amount, after in legs:
                    await conn.execute(text(
                        "INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after)"
                        " VALUES (:t, :u, :a, :c, :amount, :after)"),
                        {"t": tid, "u": leg_user, "a": account, "c": currency, "amount": amount, "after": after})
            await conn.execute(text(
                "INSERT INTO accounts (user_id, currency, available, held) VALUES"
                " ('u1', 1, 70, 30), ('s1', 2, 0, 0), ('c1', 3, 0, 5)"))
            await conn.execute(text(
                "INSERT INTO holds (hold_id, user_id, currency, amount, committed_amount, state, reference, purpose,"
                f" expire_time, create_time) VALUES ('hold_old1', 'u1', 1, 30, 0, 1, 'order-1', '', NULL, {T0}),"
                f" ('hold_old2', 'c1', 3, 5, 0, 1, 'payout_old1', 'payout', NULL, {T0})"))
            await conn.execute(text(
                "INSERT INTO payouts (payout_id, creator_id, diamonds, cash_value_minor, cash_currency,"
                " cash_minor_per_thousand_diamonds, state, hold_id, create_time)"
                f" VALUES ('payout_old1', 'c1', 5, 1, 'USD', 200, 1, 'hold_old2', {T0})"))
    finally:
        await engine.dispose()
    return url


async def test_the_upgrade_files_old_rows_by_user(wallet: Client, new_database: NewDatabase) -> None:
    url = await _old_database(new_database)
    started = await start(WalletSettings(database_url=url, port=0, tokens_json=json.dumps(TOKENS)),
                          clock=ManualClock(), sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        upgraded = Client(channel, started, wallet.clock)
        async with started.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM postings WHERE user_id = ''"))).scalar() == 0
            filed = (await conn.execute(text(
                "SELECT account, currency, user_id FROM postings WHERE transaction_id = 't-gift'"
                " AND account LIKE 'system:%' ORDER BY 1, 2"))).all()
            gift_rows = (await conn.execute(text(
                "SELECT user_id FROM transactions WHERE transaction_id = 't-gift' ORDER BY 1"))).scalars().all()
        # A system leg goes under the user whose leg moves its currency: COINS the sender's, DIAMONDS the creator's.
        assert [tuple(r) for r in filed] == [
            ("system:gift_conversion", COINS, "s1"), ("system:gift_conversion", DIAMONDS, "c1"),
            ("system:gift_revenue", COINS, "s1"),
        ]
        assert gift_rows == ["c1", "s1"]
        await check_invariants(started.engine)

        # Both parties read the old gift and their own history.
        for user, role in (("s1", pb.GIFT_ROLE_SENDER), ("c1", pb.GIFT_ROLE_CREATOR)):
            gifts = (await upgraded.call("ListGifts", "app")(pb.ListGiftsRequest(user_id=user, role=role))).gifts
            assert [(g.sender_id, g.creator_id, g.coins, g.diamonds) for g in gifts] == [("s1", "c1", 10, 5)]
        history = await upgraded.call("ListTransactions", "app")(pb.ListTransactionsRequest(user_id="c1"))
        assert [(e.transaction_id, e.amount) for e in history.entries] == [("t-gift", 5)]

        # Ids made before name no user and still work: read, commit, refund, complete a payout.
        assert (await upgraded.call("GetHold")(pb.GetHoldRequest(hold_id="hold_old1"))).hold.user_id == "u1"
        commit = pb.CommitHoldRequest(request_id="k-old1", hold_id="hold_old1", reason="redemption")
        committed = await upgraded.call("CommitHold", "redemption")(commit)
        assert (committed.balance.available, committed.balance.held) == (70, 0)
        assert await upgraded.call("CommitHold", "redemption")(commit) == committed
        refund = pb.RefundHoldRequest(request_id="f-old1", hold_id="hold_old1", amount=10, reason="refund")
        refunded = await upgraded.call("RefundHold", "redemption")(refund)
        assert await upgraded.call("RefundHold", "redemption")(refund) == refunded
        assert await upgraded.balance("u1") == (80, 0)
        done = pb.CompletePayoutRequest(request_id="p-old1", payout_id="payout_old1", success=True)
        paid = await upgraded.call("CompletePayout", "payments")(done)
        assert (paid.payout.creator_id, paid.payout.state) == ("c1", pb.PAYOUT_STATE_COMPLETED)
        assert await upgraded.balance("c1", DIAMONDS) == (0, 0)

        # New ids name their user.
        await upgraded.fund("u2", 50)
        reserved = await upgraded.call("Reserve", "redemption")(
            pb.ReserveRequest(request_id="r-new", user_id="u2", currency=POINTS, amount=20, reference="o-2"))
        assert id_owner("hold", reserved.hold.hold_id) == "u2"
        await check_invariants(started.engine)
    finally:
        await channel.close()
        await started.stop()
