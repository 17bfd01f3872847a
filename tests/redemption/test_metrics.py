"""Saga metrics: terminal states (bounded cancel reasons), step outcomes, and the pending gauge."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from points.redemption.v1 import redemption_pb2 as rpb
from redemption.metrics import cancel_reason_label
from tests.redemption.conftest import Suite, cosmetic_spec, md, uid


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


FINISHED = "points_redemption_sagas_finished_total"
STEPS = "points_redemption_saga_steps_total"


async def test_completed_cancelled_and_refunded_sagas_move_the_counters(suite: Suite) -> None:
    watched = {
        "completed": (FINISHED, {"state": "COMPLETED", "reason": "none"}),
        "no_funds": (FINISHED, {"state": "CANCELLED", "reason": "INSUFFICIENT_FUNDS"}),
        "refunded": (FINISHED, {"state": "REFUNDED", "reason": "none"}),
        "commit_stock": (STEPS, {"step": "COMMIT_STOCK", "outcome": "SUCCEEDED"}),
        "quote_refused": (STEPS, {"step": "QUOTE", "outcome": "FAILED"}),
        "stock_reserved": (STEPS, {"step": "RESERVE_STOCK", "outcome": "SUCCEEDED"}),
        "return_stock": (STEPS, {"step": "RETURN_STOCK", "outcome": "SUCCEEDED"}),
    }
    before = {key: sample(name, **labels) for key, (name, labels) in watched.items()}
    user = uid("u")
    await suite.fund(user, 150)
    item = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=5))
    done = await suite.redeem(user, item.item_id)
    poor = await suite.redeem(user, item.item_id)  # 50 points left: refused before any stock is reserved
    assert (done.state, poor.state) == (rpb.REDEMPTION_STATE_COMPLETED, rpb.REDEMPTION_STATE_CANCELLED)
    assert poor.cancel_reason == "INSUFFICIENT_FUNDS"
    refunded = (await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
        request_id=uid("refund"), redemption_id=done.redemption_id), metadata=md("admin"), timeout=20)).redemption
    assert refunded.state == rpb.REDEMPTION_STATE_REFUNDED
    delta = {key: sample(name, **labels) - before[key] for key, (name, labels) in watched.items()}
    assert delta == {"completed": 1, "no_funds": 1, "refunded": 1, "commit_stock": 1, "quote_refused": 1,
                     "stock_reserved": 1, "return_stock": 1}


def test_cancel_reason_label_is_bounded() -> None:
    assert cancel_reason_label("OUT_OF_STOCK") == "OUT_OF_STOCK"
    assert cancel_reason_label("SOMETHING_A_PEER_INVENTED_42") == "OTHER"
    assert cancel_reason_label("") == "OTHER"


async def test_pending_gauge_is_set_from_the_database_count(suite: Suite) -> None:
    async with suite.redemption.engine.connect() as conn:
        pending = int((await conn.execute(text("SELECT count(*) FROM sagas WHERE state = 'PENDING'"))).scalar_one())
    counts = await suite.redemption.service.refresh_metrics()
    modes = ("FORWARD", "COMPENSATING", "REFUNDING")
    values = {mode: REGISTRY.get_sample_value("points_redemption_sagas_pending", {"mode": mode}) for mode in modes}
    assert None not in values.values()
    assert sum(counts.values()) == pending == sum(v or 0 for v in values.values())


async def test_entitlement_uses_and_refusals_are_counted_once_each(suite: Suite) -> None:
    used = ("points_redemption_entitlement_uses_total", {"kind": "COSMETIC", "outcome": "USED"})
    refused = ("points_redemption_entitlement_uses_total", {"kind": "COSMETIC", "outcome": "ENTITLEMENT_REVOKED"})
    before = (sample(used[0], **used[1]), sample(refused[0], **refused[1]))
    user = uid("u")
    await suite.fund(user, 101)
    done = await suite.redeem(user, (await suite.item(**cosmetic_spec(price=100))).item_id)
    use = rpb.ConsumeEntitlementRequest(request_id=uid("use"), entitlement_id=done.entitlement_ids[0])
    await suite.stub.ConsumeEntitlement(use, metadata=md("fulfilment"))
    await suite.stub.ConsumeEntitlement(use, metadata=md("fulfilment"))  # a replay is not another use
    revoked = await suite.redeem(user, (await suite.item(**cosmetic_spec(price=1))).item_id)
    await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
        request_id=uid("refund"), redemption_id=revoked.redemption_id), metadata=md("admin"), timeout=20)
    with pytest.raises(grpc.aio.AioRpcError):
        await suite.stub.ConsumeEntitlement(rpb.ConsumeEntitlementRequest(
            request_id=uid("use"), entitlement_id=revoked.entitlement_ids[0]), metadata=md("fulfilment"))
    after = (sample(used[0], **used[1]), sample(refused[0], **refused[1]))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
