"""ForfeitPoints: an admin takes some or all of a user's available points to
system:forfeited, with a reason and a ticket, idempotently, never overdrawing, also under races."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from sqlalchemy import text

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.client import error_reason
from tests.support.rpc import expect_error
from tests.support.wait import eventually
from tests.wallet.conftest import POINTS, Client

FAILED, INVALID = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT


def forfeit(
    user: str, request_id: str, amount: int = 0, *, all: bool = False, **fields: str
) -> pb.ForfeitPointsRequest:
    values = {"reason": "ignored rule change", "ticket": "SUP-42", **fields}
    return pb.ForfeitPointsRequest(request_id=request_id, user_id=user, amount=amount, all=all, **values)


async def forfeited_total(wallet: Client, user: str) -> int:
    async with wallet.engine.connect() as conn:
        total = await conn.execute(
            text(
                "SELECT coalesce(sum(p.amount), 0) FROM postings p JOIN transactions t USING (transaction_id)"
                " WHERE p.account = 'system:forfeited' AND t.user_id = :u"
            ),
            {"u": user},
        )
        return int(total.scalar_one())


async def test_forfeit_an_amount_then_all_shows_in_the_history(wallet: Client) -> None:
    await wallet.fund("ff", 100)
    reply = await wallet.call("ForfeitPoints")(forfeit("ff", "ff-1", 30))
    assert (reply.amount, reply.balance.available) == (30, 70)
    assert reply.transaction.kind == pb.TRANSACTION_KIND_FORFEIT
    assert [(p.account, p.amount) for p in reply.transaction.postings] == [("user:ff", -30), ("system:forfeited", 30)]
    everything = await wallet.call("ForfeitPoints")(forfeit("ff", "ff-2", all=True, reason="fraud", ticket="SUP-43"))
    assert (everything.amount, everything.balance.available) == (70, 0)
    history = await wallet.call("ListTransactions", "app")(pb.ListTransactionsRequest(user_id="ff"))
    assert [(e.kind, e.amount, e.reason, e.reference, e.balance_after) for e in history.entries[:2]] == [
        (pb.TRANSACTION_KIND_FORFEIT, -70, "fraud", "SUP-43", 0),
        (pb.TRANSACTION_KIND_FORFEIT, -30, "ignored rule change", "SUP-42", 70),
    ]
    assert await forfeited_total(wallet, "ff") == 100


async def test_forfeit_is_idempotent_and_never_overdraws(wallet: Client) -> None:
    await wallet.fund("ff-idem", 50)
    first = await wallet.call("ForfeitPoints")(forfeit("ff-idem", "ffi-1", all=True))
    await wallet.fund("ff-idem", 5)
    assert await wallet.call("ForfeitPoints")(forfeit("ff-idem", "ffi-1", all=True)) == first  # a replay takes no more
    await expect_error(
        wallet.call("ForfeitPoints")(forfeit("ff-idem", "ffi-1", 5)),
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )
    await expect_error(wallet.call("ForfeitPoints")(forfeit("ff-idem", "ffi-2", 6)), FAILED, "INSUFFICIENT_FUNDS")
    assert await wallet.balance("ff-idem") == (5, 0)
    await expect_error(
        wallet.call("ForfeitPoints")(forfeit("ff-nobody", "ffi-3", all=True)), FAILED, "NOTHING_TO_FORFEIT"
    )


async def test_forfeit_all_leaves_held_points_to_their_redemption(wallet: Client) -> None:
    await wallet.fund("ff-held", 40)
    await wallet.call("Reserve", "redemption")(
        pb.ReserveRequest(request_id="ffh-hold", user_id="ff-held", currency=POINTS, amount=15)
    )
    reply = await wallet.call("ForfeitPoints")(forfeit("ff-held", "ffh-1", all=True))
    assert reply.amount == 25 and await wallet.balance("ff-held") == (0, 15)


async def test_bad_forfeits_are_refused_with_reasons(wallet: Client) -> None:
    call = wallet.call("ForfeitPoints")
    await expect_error(call(forfeit("ff-bad", "ffb", 0)), INVALID, "INVALID_FIELD")
    await expect_error(call(forfeit("ff-bad", "ffb", -1)), INVALID, "INVALID_FIELD")
    await expect_error(call(forfeit("ff-bad", "ffb", 5, all=True)), INVALID, "INVALID_FIELD")
    await expect_error(call(forfeit("ff-bad", "ffb", 5, reason="")), INVALID, "REASON_REQUIRED")
    await expect_error(call(forfeit("ff-bad", "ffb", 5, ticket="")), INVALID, "TICKET_REQUIRED")
    await expect_error(call(forfeit("ff-bad", "ffb", 5, reason="x" * 65)), INVALID, "INVALID_FIELD")
    await expect_error(call(forfeit("", "ffb", 5)), INVALID, "INVALID_FIELD")
    await expect_error(call(forfeit("ff-bad", "", 5)), INVALID, "INVALID_FIELD")
    for caller in ("app", "earning", "redemption", "payments"):
        await expect_error(
            wallet.call("ForfeitPoints", caller)(forfeit("ff-bad", "ffb", 5)),
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_ALLOWED",
        )


async def outcome(call: Any) -> str:
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        return error_reason(exc)
    return f"ok:{-reply.transaction.postings[0].amount}"


async def account_lock_waiters(wallet: Client) -> int:
    async with wallet.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        )


async def test_forfeits_racing_debits_and_holds_never_overdraw(wallet: Client) -> None:
    """Forfeits (an amount, and "all") race debits and holds for one balance. The account row is held
    locked until the first ledger batch waits on it, so they really meet; whatever the order, the
    applied amounts sum to what the user had and the balance never goes below zero ("all" is resolved
    against the locked balance, in the batch that applies it)."""
    await wallet.fund("ff-race", 100)
    calls = []
    for i in range(40):
        calls.append(
            wallet.call("Debit", "redemption")(
                pb.DebitRequest(request_id=f"ffr-d{i}", user_id="ff-race", currency=POINTS, amount=3, reason="redeem")
            )
        )
        if i % 10 == 0:
            calls.append(wallet.call("ForfeitPoints")(forfeit("ff-race", f"ffr-f{i}", 7)))
        if i == 20:
            calls.append(wallet.call("ForfeitPoints")(forfeit("ff-race", "ffr-all", all=True)))
    async with wallet.engine.connect() as blocker:
        await blocker.execute(text("SELECT 1 FROM accounts WHERE user_id = 'ff-race' FOR UPDATE"))
        racing = asyncio.gather(*(outcome(c) for c in calls))
        await eventually(lambda: _waits(wallet), what="a ledger batch waits on the locked account")
        await blocker.rollback()
    results = await racing
    applied = sum(int(r.split(":")[1]) for r in results if r.startswith("ok:"))
    assert set(results) - {r for r in results if r.startswith("ok:")} <= {"INSUFFICIENT_FUNDS", "NOTHING_TO_FORFEIT"}
    assert applied == 100 and await wallet.balance("ff-race") == (0, 0)


async def _waits(wallet: Client) -> bool:
    return await account_lock_waiters(wallet) > 0
