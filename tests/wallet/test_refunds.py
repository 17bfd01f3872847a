"""RefundHold: a committed hold's debit given back, in part or in full, never more than it debited."""

from __future__ import annotations

import asyncio

import grpc

from points.wallet.v1 import wallet_pb2 as pb
from tests.wallet.conftest import COINS, POINTS, Client
from tests.wallet.test_holds import reserve

OK = grpc.StatusCode
FP = OK.FAILED_PRECONDITION


async def committed_hold(wallet: Client, user: str, amount: int, currency: int = COINS, funds: int = 100) -> pb.Hold:
    await wallet.fund(user, funds, currency)
    hold = await reserve(wallet, f"r-{user}", user, amount, currency=currency)
    reply = await wallet.call("CommitHold", "redemption")(
        pb.CommitHoldRequest(request_id=f"c-{user}", hold_id=hold.hold_id, reason="redemption")
    )
    return reply.hold  # type: ignore[no-any-return]


async def requested_payout(wallet: Client, creator: str) -> pb.RequestPayoutResponse:
    """A pending payout of 100 diamonds (diamonds come only from coin gifts)."""
    await wallet.fund(f"{creator}-fan", 1_000, COINS)
    await wallet.call("SendGift", "app")(
        pb.SendGiftRequest(request_id=f"{creator}-gift", sender_id=f"{creator}-fan", creator_id=creator, coins=1_000)
    )
    return await wallet.call("RequestPayout", "app")(  # type: ignore[no-any-return]
        pb.RequestPayoutRequest(request_id=f"{creator}-p", creator_id=creator, diamonds=100)
    )


async def test_refund_in_parts_up_to_the_committed_amount(wallet: Client) -> None:
    hold = await committed_hold(wallet, "rf1", 30)
    assert await wallet.balance("rf1", COINS) == (70, 0)
    refund = wallet.call("RefundHold", "redemption")
    first = await refund(pb.RefundHoldRequest(request_id="rf1-a", hold_id=hold.hold_id, amount=10, reason="refund"))
    assert first.hold.refunded_amount == 10 and first.balance.available == 80
    assert first.transaction.kind == pb.TRANSACTION_KIND_REFUND
    assert first.transaction.reference == "red-1"
    assert {(p.account, p.amount) for p in first.transaction.postings} == {
        ("user:rf1", 10), ("system:coin_redemption", -10),
    }
    await wallet.expect_error(
        refund(pb.RefundHoldRequest(request_id="rf1-b", hold_id=hold.hold_id, amount=21)),
        FP,
        "REFUND_EXCEEDS_COMMITTED",
    )
    rest = await refund(pb.RefundHoldRequest(request_id="rf1-c", hold_id=hold.hold_id))  # 0 = all that is left
    assert rest.hold.refunded_amount == 30 and rest.balance.available == 100
    await wallet.expect_error(
        refund(pb.RefundHoldRequest(request_id="rf1-d", hold_id=hold.hold_id, amount=1)), FP, "HOLD_ALREADY_REFUNDED"
    )
    assert await wallet.balance("rf1", COINS) == (100, 0)
    got = await wallet.call("GetHold")(pb.GetHoldRequest(hold_id=hold.hold_id))
    assert (got.hold.state, got.hold.committed_amount, got.hold.refunded_amount) == (pb.HOLD_STATE_COMMITTED, 30, 30)
    history = await wallet.call("ListTransactions")(pb.ListTransactionsRequest(user_id="rf1", currency=COINS))
    assert [(e.kind, e.amount, e.balance_after) for e in history.entries[:2]] == [
        (pb.TRANSACTION_KIND_REFUND, 20, 100), (pb.TRANSACTION_KIND_REFUND, 10, 80),
    ]


async def test_refund_replays_and_refuses_key_reuse(wallet: Client) -> None:
    hold = await committed_hold(wallet, "rf2", 40, currency=POINTS)
    refund = wallet.call("RefundHold", "redemption")
    request = pb.RefundHoldRequest(request_id="rf2-a", hold_id=hold.hold_id, amount=15, reason="refund")
    first = await refund(request)
    again = await refund(request)
    assert again == first
    assert await wallet.balance("rf2") == (75, 0)
    await wallet.expect_error(
        refund(pb.RefundHoldRequest(request_id="rf2-a", hold_id=hold.hold_id, amount=16, reason="refund")),
        OK.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )
    # Reused for a hold of the same user that does not exist: still the reuse, not HOLD_NOT_FOUND (the
    # key is the user the hold id names, and the request id).
    missing = f"hold_{'f' * 32}:rf2"
    await wallet.expect_error(
        refund(pb.RefundHoldRequest(request_id="rf2-a", hold_id=missing, amount=15, reason="refund")),
        OK.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )
    # A request id is unique per user: for an id naming no user (or another) it is another request.
    await wallet.expect_error(
        refund(pb.RefundHoldRequest(request_id="rf2-a", hold_id="hold_missing", amount=15, reason="refund")),
        OK.NOT_FOUND,
        "HOLD_NOT_FOUND",
    )


async def test_only_committed_holds_and_allowed_callers(wallet: Client) -> None:
    await wallet.fund("rf3", 100)
    refund = wallet.call("RefundHold", "redemption")
    active = await reserve(wallet, "r-rf3-a", "rf3", 10)
    early = refund(pb.RefundHoldRequest(request_id="rf3-a", hold_id=active.hold_id))
    await wallet.expect_error(early, FP, "HOLD_NOT_COMMITTED")
    await wallet.call("ReleaseHold", "redemption")(pb.ReleaseHoldRequest(request_id="rl-rf3-a", hold_id=active.hold_id))
    after_release = refund(pb.RefundHoldRequest(request_id="rf3-b", hold_id=active.hold_id))
    await wallet.expect_error(after_release, FP, "HOLD_NOT_COMMITTED")
    await wallet.expect_error(
        refund(pb.RefundHoldRequest(request_id="rf3-c", hold_id="hold_missing")), OK.NOT_FOUND, "HOLD_NOT_FOUND"
    )
    await wallet.expect_error(
        refund(pb.RefundHoldRequest(request_id="rf3-d", hold_id=active.hold_id, amount=-1)),
        OK.INVALID_ARGUMENT,
        "INVALID_FIELD",
    )
    await wallet.expect_error(
        wallet.call("RefundHold", "app")(pb.RefundHoldRequest(request_id="rf3-e", hold_id=active.hold_id)),
        OK.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
    )
    assert await wallet.balance("rf3") == (100, 0)


async def test_payout_holds_are_not_refunded_here(wallet: Client) -> None:
    payout = await requested_payout(wallet, "rf4")
    await wallet.call("CompletePayout", "payments")(
        pb.CompletePayoutRequest(request_id="rf4-done", payout_id=payout.payout.payout_id, success=True)
    )
    await wallet.expect_error(
        wallet.call("RefundHold", "redemption")(
            pb.RefundHoldRequest(request_id="rf4-r", hold_id=payout.payout.hold_id)
        ),
        FP,
        "HOLD_MANAGED_BY_PAYOUT",
    )


async def test_concurrent_refunds_never_exceed_the_debit(wallet: Client) -> None:
    """20 refunds of 3 race for a debit of 50: 16 succeed (48), the rest are refused; 2 stay."""
    hold = await committed_hold(wallet, "rf5", 50, currency=POINTS, funds=50)
    refund = wallet.call("RefundHold", "redemption")

    async def one(i: int) -> int:
        try:
            reply = await refund(pb.RefundHoldRequest(request_id=f"rf5-{i}", hold_id=hold.hold_id, amount=3))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == FP, exc.details()
            return 0
        return 3 if reply.transaction.kind == pb.TRANSACTION_KIND_REFUND else -1

    given = await asyncio.gather(*(one(i) for i in range(20)))
    assert sum(given) == 48 and given.count(3) == 16
    assert await wallet.balance("rf5") == (48, 0)
    got = await wallet.call("GetHold")(pb.GetHoldRequest(hold_id=hold.hold_id))
    assert got.hold.refunded_amount == 48


async def test_one_refund_retried_concurrently_is_given_once_and_replayed(wallet: Client) -> None:
    """Ten calls with one request id race for the hold's lock: one refund, nine replays of it
    (the key's answer is read after the lock, not before)."""
    hold = await committed_hold(wallet, "rf6", 40, currency=POINTS, funds=40)
    request = pb.RefundHoldRequest(request_id="rf6-a", hold_id=hold.hold_id, reason="refund")
    replies = await asyncio.gather(*(wallet.call("RefundHold", "redemption")(request) for _ in range(10)))
    assert all(r == replies[0] for r in replies)
    assert replies[0].hold.refunded_amount == 40
    assert await wallet.balance("rf6") == (40, 0)


async def test_one_payout_completion_retried_concurrently_is_replayed(wallet: Client) -> None:
    payout = await requested_payout(wallet, "rf7")
    done = pb.CompletePayoutRequest(request_id="rf7-done", payout_id=payout.payout.payout_id, success=True)
    replies = await asyncio.gather(*(wallet.call("CompletePayout", "payments")(done) for _ in range(10)))
    assert all(r == replies[0] for r in replies)
    assert replies[0].payout.state == pb.PAYOUT_STATE_COMPLETED
    # Reused for a missing payout of the same creator (the user its id names): the reuse.
    missing = f"payout_{'f' * 32}:rf7"
    await wallet.expect_error(
        wallet.call("CompletePayout", "payments")(
            pb.CompletePayoutRequest(request_id="rf7-done", payout_id=missing, success=True)
        ),
        OK.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )
