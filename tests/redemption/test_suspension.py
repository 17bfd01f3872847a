"""A suspended user cannot redeem (issue 18): the wallet refuses the hold, the saga releases what it
reserved, and Redeem answers FAILED_PRECONDITION USER_SUSPENDED. Reads still work; reinstatement
restores redeeming (a new request; the refused one keeps its answer)."""

from __future__ import annotations

import grpc

from points.redemption.v1 import redemption_pb2 as rpb
from points.wallet.v1 import wallet_pb2
from points_platform.client import acting_for
from tests.redemption.conftest import Suite, cosmetic_spec, md, uid
from tests.support.rpc import expect_error


async def set_suspended(suite: Suite, user: str, suspended: bool) -> None:
    fields = {
        "request_id": uid("status"),
        "user_id": user,
        "reason": "fake engagement",
        "ticket": "SUP-5",
        "operator_id": "agent-2",
    }
    if suspended:
        await suite.wallet_stub.SuspendUser(wallet_pb2.SuspendUserRequest(**fields), metadata=md("admin"))
    else:
        await suite.wallet_stub.ReinstateUser(wallet_pb2.ReinstateUserRequest(**fields), metadata=md("admin"))


async def test_a_suspended_user_is_refused_and_nothing_stays_reserved_or_held(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 500)
    limited = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=2))
    unlimited = await suite.item(**cosmetic_spec(price=100))
    await set_suspended(suite, user, True)

    refused_id = uid("redeem")
    for item, request_id in ((limited, refused_id), (unlimited, None)):
        await expect_error(
            suite.redeem(user, item.item_id, request_id=request_id),
            grpc.StatusCode.FAILED_PRECONDITION,
            "USER_SUSPENDED",
        )
    after = await suite.get_item(limited.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (2, 0, 0)
    balance = await suite.balance(user)
    assert (balance.available, balance.held) == (500, 0)
    assert await suite.entitlements(user) == []
    listed = await suite.stub.ListRedemptions(
        rpb.ListRedemptionsRequest(user_id=user), metadata=acting_for(md("app"), user)
    )
    assert [(r.state, r.cancel_reason) for r in listed.redemptions] == [
        (rpb.REDEMPTION_STATE_CANCELLED, "USER_SUSPENDED")
    ] * 2

    await set_suspended(suite, user, False)
    # The refused request keeps its answer; a new one redeems.
    await expect_error(
        suite.redeem(user, limited.item_id, request_id=refused_id),
        grpc.StatusCode.FAILED_PRECONDITION,
        "USER_SUSPENDED",
    )
    assert (await suite.redeem(user, limited.item_id)).state == rpb.REDEMPTION_STATE_COMPLETED
    assert (await suite.balance(user)).available == 400
