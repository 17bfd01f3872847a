"""ListAllRedemptions: the operators' saga view across users, filtered by state and age, with the steps."""

from __future__ import annotations

import grpc
import pytest

from points.redemption.v1 import redemption_pb2 as rpb
from points_platform.client import error_reason
from tests.redemption.conftest import Suite, cosmetic_spec, md, uid

COMPLETED = rpb.REDEMPTION_STATE_COMPLETED
CANCELLED = rpb.REDEMPTION_STATE_CANCELLED


async def list_all(suite: Suite, **fields: object) -> rpb.ListAllRedemptionsResponse:
    request = rpb.ListAllRedemptionsRequest(**fields)  # type: ignore[arg-type]
    reply: rpb.ListAllRedemptionsResponse = await suite.stub.ListAllRedemptions(request, metadata=md("admin"))
    return reply


async def test_lists_every_users_redemptions_by_state_with_the_cancelled_step(suite: Suite) -> None:
    rich, poor = uid("rich"), uid("poor")
    await suite.fund(rich, 500)
    await suite.fund(poor, 10)
    item = await suite.item(**cosmetic_spec(price=100))
    done = await suite.redeem(rich, item.item_id)
    suite.clock.advance(1)
    failed = await suite.redeem(poor, item.item_id)
    assert (done.state, failed.state) == (COMPLETED, CANCELLED)

    cancelled = (await list_all(suite, states=[CANCELLED])).redemptions
    assert failed.redemption_id in [r.redemption_id for r in cancelled]
    assert all(r.state == CANCELLED for r in cancelled)
    [shown] = [r for r in cancelled if r.redemption_id == failed.redemption_id]
    assert shown.user_id == poor and shown.cancel_reason == "INSUFFICIENT_FUNDS"
    assert (rpb.SAGA_STEP_NAME_HOLD_FUNDS, rpb.STEP_OUTCOME_FAILED) in [(s.name, s.outcome) for s in shown.steps]
    single = await suite.stub.GetRedemption(rpb.GetRedemptionRequest(redemption_id=failed.redemption_id),
                                            metadata=md("admin"))
    assert list(shown.steps) == list(single.redemption.steps)

    both = {r.redemption_id: r for r in (await list_all(suite, states=[COMPLETED, CANCELLED])).redemptions}
    assert {done.redemption_id, failed.redemption_id} <= set(both)
    assert list(both[done.redemption_id].steps) == list(done.steps)
    everything = (await list_all(suite)).redemptions
    assert everything[0].redemption_id == failed.redemption_id  # newest first


async def test_the_age_filter_and_the_pages(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 500)
    item = await suite.item(**cosmetic_spec(price=10))
    old = await suite.redeem(user, item.item_id)
    suite.clock.advance(3600)
    new = await suite.redeem(user, item.item_id)
    recent = [r.redemption_id for r in (await list_all(suite, max_age_seconds=600)).redemptions]
    assert new.redemption_id in recent and old.redemption_id not in recent
    assert old.redemption_id in [r.redemption_id for r in (await list_all(suite, max_age_seconds=7200)).redemptions]

    first = await list_all(suite, page_size=1)
    assert len(first.redemptions) == 1 and first.next_page_token
    second = await list_all(suite, page_size=1, page_token=first.next_page_token)
    assert second.redemptions[0].redemption_id != first.redemptions[0].redemption_id


@pytest.mark.parametrize("fields", [
    {"states": [rpb.REDEMPTION_STATE_UNSPECIFIED]}, {"states": [99]}, {"max_age_seconds": -1},
    {"max_age_seconds": 10**12}, {"page_size": -1}, {"page_token": "junk"},
])
async def test_bad_filters_are_invalid_arguments(suite: Suite, fields: dict[str, object]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await list_all(suite, **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_only_the_admin_lists_across_users(suite: Suite) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await suite.stub.ListAllRedemptions(rpb.ListAllRedemptionsRequest(), metadata=md("app"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(refused.value)
