"""User suspension: SuspendUser / ReinstateUser / GetUserStatus, and what a suspended
user may not do in the wallet (receive activity credits, hold funds, send gifts, request payouts)
while reads, refunds, payments and admin adjustments still work."""

from __future__ import annotations

import uuid

import grpc

from points.wallet.v1 import wallet_pb2 as pb
from tests.support.rpc import expect_error
from tests.wallet.conftest import COINS, DIAMONDS, POINTS, Client

FAILED, INVALID, DENIED = (
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
)


def suspend_request(user: str, request_id: str = "", **fields: str) -> pb.SuspendUserRequest:
    values = {"reason": "fake engagement", "ticket": "SUP-1", "operator_id": "agent-7", **fields}
    return pb.SuspendUserRequest(request_id=request_id or uuid.uuid4().hex, user_id=user, **values)


def reinstate_request(user: str, request_id: str = "", **fields: str) -> pb.ReinstateUserRequest:
    values = {"reason": "appeal accepted", "ticket": "SUP-2", "operator_id": "agent-8", **fields}
    return pb.ReinstateUserRequest(request_id=request_id or uuid.uuid4().hex, user_id=user, **values)


async def suspend(wallet: Client, user: str) -> None:
    await wallet.call("SuspendUser")(suspend_request(user))


async def reinstate(wallet: Client, user: str) -> None:
    await wallet.call("ReinstateUser")(reinstate_request(user))


def earned(user: str, amount: int = 5) -> pb.CreditRequest:
    return pb.CreditRequest(request_id=uuid.uuid4().hex, user_id=user, currency=POINTS, amount=amount, reason="like")


def hold(user: str, amount: int = 5, currency: int = POINTS) -> pb.ReserveRequest:
    return pb.ReserveRequest(request_id=uuid.uuid4().hex, user_id=user, currency=currency, amount=amount)  # type: ignore[arg-type]


def gift(sender: str, creator: str = "creator-s", coins: int = 10) -> pb.SendGiftRequest:
    return pb.SendGiftRequest(request_id=uuid.uuid4().hex, sender_id=sender, creator_id=creator, coins=coins)


async def test_suspend_and_reinstate_keep_the_history(wallet: Client) -> None:
    status = (await wallet.call("GetUserStatus")(pb.GetUserStatusRequest(user_id="hist"))).status
    assert status.state == pb.USER_STATE_ACTIVE and not status.HasField("last_change")
    suspended = await wallet.call("SuspendUser")(suspend_request("hist", "s-1"))
    assert suspended.status.state == pb.USER_STATE_SUSPENDED
    assert suspended.status.last_change.ticket == "SUP-1"
    reinstated = await wallet.call("ReinstateUser")(reinstate_request("hist", "r-1"))
    assert reinstated.status.state == pb.USER_STATE_ACTIVE
    await wallet.call("SuspendUser")(suspend_request("hist", "s-2", reason="again", ticket="SUP-3"))
    reply = await wallet.call("GetUserStatus")(pb.GetUserStatusRequest(user_id="hist"))
    assert reply.status.state == pb.USER_STATE_SUSPENDED
    assert reply.status.last_change.reason == "again"
    assert [(c.action, c.operator_id, c.reason, c.ticket, c.request_id) for c in reply.history] == [
        (pb.USER_STATUS_ACTION_SUSPENDED, "agent-7", "again", "SUP-3", "s-2"),
        (pb.USER_STATUS_ACTION_REINSTATED, "agent-8", "appeal accepted", "SUP-2", "r-1"),
        (pb.USER_STATUS_ACTION_SUSPENDED, "agent-7", "fake engagement", "SUP-1", "s-1"),
    ]
    assert all(c.create_time.seconds > 0 for c in reply.history)


async def test_status_changes_are_idempotent_and_refuse_a_second_change(wallet: Client) -> None:
    first = await wallet.call("SuspendUser")(suspend_request("idem", "idem-s"))
    again = await wallet.call("SuspendUser")(suspend_request("idem", "idem-s"))
    assert again == first
    await expect_error(wallet.call("SuspendUser")(suspend_request("idem")), FAILED, "USER_ALREADY_SUSPENDED")
    await expect_error(
        wallet.call("SuspendUser")(suspend_request("idem", "idem-s", reason="other")),
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )
    await wallet.call("ReinstateUser")(reinstate_request("idem", "idem-r"))
    await wallet.call("ReinstateUser")(reinstate_request("idem", "idem-r"))  # a replay, not a second change
    await expect_error(wallet.call("ReinstateUser")(reinstate_request("idem")), FAILED, "USER_NOT_SUSPENDED")
    history = (await wallet.call("GetUserStatus")(pb.GetUserStatusRequest(user_id="idem"))).history
    assert len(history) == 2  # refused changes leave no trace


async def test_bad_input_is_refused_with_reasons(wallet: Client) -> None:
    call = wallet.call("SuspendUser")
    await expect_error(call(suspend_request("bad", reason="")), INVALID, "REASON_REQUIRED")
    await expect_error(call(suspend_request("bad", ticket="")), INVALID, "TICKET_REQUIRED")
    await expect_error(call(suspend_request("bad", operator_id="")), INVALID, "OPERATOR_REQUIRED")
    await expect_error(call(suspend_request("bad", ticket="no spaces")), INVALID, "INVALID_FIELD")
    await expect_error(call(suspend_request("bad", reason="x" * 257)), INVALID, "INVALID_FIELD")
    await expect_error(call(suspend_request("bad", reason="nul\x00")), INVALID, "INVALID_FIELD")
    await expect_error(call(suspend_request("")), INVALID, "INVALID_FIELD")
    await expect_error(wallet.call("GetUserStatus")(pb.GetUserStatusRequest(user_id="")), INVALID, "INVALID_FIELD")


async def test_only_admin_changes_or_reads_a_status(wallet: Client) -> None:
    for caller in ("app", "earning", "redemption", "payments"):
        await expect_error(wallet.call("SuspendUser", caller)(suspend_request("pol")), DENIED, "CALLER_NOT_ALLOWED")
        await expect_error(wallet.call("ReinstateUser", caller)(reinstate_request("pol")), DENIED, "CALLER_NOT_ALLOWED")
        await expect_error(
            wallet.call("GetUserStatus", caller)(pb.GetUserStatusRequest(user_id="pol")), DENIED, "CALLER_NOT_ALLOWED"
        )


async def test_a_suspended_user_earns_holds_gifts_and_cashes_out_nothing(wallet: Client) -> None:
    await wallet.fund("sus", 100)
    await wallet.fund("sus", 100, COINS)
    await wallet.fund("sus-creator", 110, COINS)
    await wallet.call("SendGift", "app")(gift("sus-creator", "sus", 100))  # sus has 50 diamonds
    await suspend(wallet, "sus")

    await expect_error(wallet.call("Credit", "earning")(earned("sus")), FAILED, "USER_SUSPENDED")
    batch = await wallet.call("CreditBatch", "earning")(
        pb.CreditBatchRequest(
            entries=[
                pb.CreditBatchEntry(**{f.name: v for f, v in earned(u).ListFields()}) for u in ("sus", "sus-neighbour")
            ]
        )
    )
    assert [r.error_reason for r in batch.results] == ["USER_SUSPENDED", ""]  # the neighbour is credited
    await expect_error(wallet.call("Reserve", "redemption")(hold("sus")), FAILED, "USER_SUSPENDED")
    await expect_error(wallet.call("Reserve", "redemption")(hold("sus", 10**6)), FAILED, "USER_SUSPENDED")
    await expect_error(wallet.call("SendGift", "app")(gift("sus")), FAILED, "USER_SUSPENDED")
    await expect_error(
        wallet.call("RequestPayout", "app")(pb.RequestPayoutRequest(request_id="sus-p", creator_id="sus", diamonds=10)),
        FAILED,
        "USER_SUSPENDED",
    )
    # Nothing moved, and reads still work.
    assert await wallet.balance("sus") == (100, 0)
    assert await wallet.balance("sus", COINS) == (100, 0)
    assert await wallet.balance("sus", DIAMONDS) == (50, 0)
    history = await wallet.call("ListTransactions", "app")(pb.ListTransactionsRequest(user_id="sus"))
    assert len(history.entries) == 3

    # Owed to the user whatever their standing: payments, refunds' credits, admin adjustments, gifts received.
    await wallet.fund("sus", 5, COINS)
    await wallet.call("Credit", "redemption")(
        pb.CreditRequest(request_id="sus-refund", user_id="sus", currency=POINTS, amount=3, reference="red-1")
    )
    await wallet.call("Credit", "admin")(
        pb.CreditRequest(request_id="sus-adj", user_id="sus", currency=POINTS, amount=2, reference="SUP-9")
    )
    await wallet.call("SendGift", "app")(gift("sus-creator", "sus", 10))
    assert await wallet.balance("sus") == (105, 0)

    await reinstate(wallet, "sus")
    await wallet.call("Credit", "earning")(earned("sus"))
    await wallet.call("Reserve", "redemption")(hold("sus"))
    await wallet.call("SendGift", "app")(gift("sus"))
    await wallet.call("RequestPayout", "app")(
        pb.RequestPayoutRequest(request_id="sus-p2", creator_id="sus", diamonds=10)
    )
    assert await wallet.balance("sus") == (105, 5)
    assert await wallet.balance("sus", DIAMONDS) == (45, 10)


async def test_replays_of_earlier_answers_still_work_while_suspended(wallet: Client) -> None:
    """A retry of something done before the suspension gets its answer, not a refusal."""
    await wallet.fund("sus-replay", 10)
    reserve, credit = hold("sus-replay"), earned("sus-replay")
    first_hold = await wallet.call("Reserve", "redemption")(reserve)
    first_credit = await wallet.call("Credit", "earning")(credit)
    await suspend(wallet, "sus-replay")
    assert (await wallet.call("Reserve", "redemption")(reserve)).hold == first_hold.hold
    assert (await wallet.call("Credit", "earning")(credit)).transaction == first_credit.transaction


async def test_a_hold_placed_before_the_suspension_still_commits_or_releases(wallet: Client) -> None:
    """A redemption in flight (its funds held) finishes: the suspension refuses new spending only."""
    await wallet.fund("sus-flight", 20)
    placed = await wallet.call("Reserve", "redemption")(hold("sus-flight", 10))
    await suspend(wallet, "sus-flight")
    await wallet.call("CommitHold", "redemption")(
        pb.CommitHoldRequest(request_id="sus-flight-c", hold_id=placed.hold.hold_id)
    )
    assert await wallet.balance("sus-flight") == (10, 0)
