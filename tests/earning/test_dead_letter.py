"""Credits the wallet refuses for good go to the dead letter after the first refusal; transient ones retry."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from structlog.testing import capture_logs

from earning.peers.wallet import is_retryable
from earning.use_cases.recording import event_credit_id
from points.common.v1 import common_pb2
from points.earning.v1 import earning_pb2 as pb
from points.wallet.v1 import wallet_pb2
from points_platform.client import bearer
from tests.earning.conftest import APP, StartSuite, Suite
from tests.support.credentials import TOKENS
from tests.support.wait import HANG_SECONDS

LIKE = 2
AWARDED, DUPLICATE = 1, 3
# The documented runbook step once the cause is fixed (docs/earning.md).
REQUEUE = (
    "UPDATE credits SET pending = true, failed_time = NULL WHERE failed_time IS NOT NULL AND last_error LIKE :cause"
)


async def credit_rows(s: Suite, *event_ids: str) -> list[dict[str, Any]]:
    async with s.earning.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT request_id, pending, failed_time IS NOT NULL AS failed, wallet_transaction_id, attempts,"
                " last_error FROM credits WHERE request_id = ANY(:ids) ORDER BY reference"
            ),
            {"ids": [event_credit_id(e) for e in event_ids]},
        )
        return [dict(r._mapping) for r in rows]


def dead_lettered(reason: str) -> float:
    return REGISTRY.get_sample_value("points_earning_credits_dead_lettered_total", {"reason": reason}) or 0.0


async def test_a_credit_the_wallet_refuses_for_good_is_dead_lettered_once_and_never_resent(
    start_suite: StartSuite,
) -> None:
    s = await start_suite()
    # Someone else already used these events' wallet request ids with other content: the wallet
    # answers IDEMPOTENCY_KEY_REUSED to every resend, forever.
    for user, event_id in (("victim1", "poisoned-single"), ("victim2", "poisoned-in-batch")):
        await s.wallet_stub.Credit(
            wallet_pb2.CreditRequest(
                request_id=event_credit_id(event_id), user_id=user, currency=common_pb2.CURRENCY_POINTS,
                amount=999, reason="other", reference="other",
            ),
            metadata=bearer(TOKENS["earning"]), timeout=HANG_SECONDS,
        )
    before_single = dead_lettered("ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED")
    before_entry = dead_lettered("IDEMPOTENCY_KEY_REUSED")

    poisoned_single = s.event("victim1", LIKE, target_id="v", event_id="poisoned-single")
    with capture_logs() as logs:
        single = await s.record(poisoned_single)  # Credit
        batch = await s.stub.RecordActivities(  # CreditBatch: one entry refused, the other credited
            pb.RecordActivitiesRequest(
                events=[
                    s.event("victim2", LIKE, target_id="v", event_id="poisoned-in-batch"),
                    s.event("bystander", LIKE, target_id="v", event_id="healthy"),
                ]
            ),
            metadata=APP, timeout=HANG_SECONDS,
        )
        assert await s.reconcile(passes=3) == 0  # later passes resend nothing: the refusals were final

    assert single.status == AWARDED and not single.wallet_transaction_id  # decided, never credited
    poisoned, healthy = batch.results
    assert poisoned.status == AWARDED and not poisoned.wallet_transaction_id
    assert healthy.status == AWARDED and healthy.wallet_transaction_id
    credited, *dead = await credit_rows(s, "healthy", "poisoned-in-batch", "poisoned-single")  # by reference
    assert [(r["pending"], r["failed"], r["wallet_transaction_id"], r["attempts"]) for r in dead] == [
        (False, True, "", 1), (False, True, "", 1)
    ]
    assert [r["last_error"] for r in dead] == ["IDEMPOTENCY_KEY_REUSED", "ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED"]
    assert (credited["pending"], credited["failed"]) == (False, False)
    assert dead_lettered("ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED") - before_single == 1
    assert dead_lettered("IDEMPOTENCY_KEY_REUSED") - before_entry == 1
    errors = [e for e in logs if e["event"] == "wallet_credit_dead_lettered"]
    assert {(e["log_level"], e["reference"], e["attempts"]) for e in errors} == {
        ("error", "poisoned-single", 1), ("error", "poisoned-in-batch", 1)
    }
    await s.reconciled(lambda: _gauge_is(2))  # a pass sets the gauge

    # a replay reports the decision and does not resend the dead credit
    again = await s.record(poisoned_single)
    assert again.status == DUPLICATE and not again.wallet_transaction_id
    assert [r["attempts"] for r in await credit_rows(s, "poisoned-single")] == [1]
    assert await s.balance("victim1") == 999 and await s.balance("bystander") == 2


async def _gauge_is(value: float) -> bool:
    return REGISTRY.get_sample_value("points_earning_credits_failed") == value


async def test_a_misconfigured_token_dead_letters_and_the_requeue_pays_once_fixed(start_suite: StartSuite) -> None:
    # earning presents the redemption caller's token: the wallet refuses CreditBatch (PERMISSION_DENIED)
    s = await start_suite(tokens_json=json.dumps({**TOKENS, "earning": TOKENS["redemption"]}))
    events = [s.event(f"denied{i}", LIKE, target_id="v") for i in range(3)]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP, timeout=HANG_SECONDS)
    assert all(r.status == AWARDED and not r.wallet_transaction_id for r in reply.results)
    assert await s.reconcile(passes=3) == 0
    rows = await credit_rows(s, *(e.event_id for e in events))
    assert [(r["failed"], r["attempts"]) for r in rows] == [(True, 1)] * 3
    assert all(r["last_error"].startswith("PERMISSION_DENIED") for r in rows)
    assert [await s.balance(f"denied{i}") for i in range(3)] == [0, 0, 0]

    # the operator fixes the token (restart), then requeues the dead letters of that cause
    await s.restart_earning(tokens_json=json.dumps(TOKENS))
    async with s.earning.engine.begin() as conn:
        await conn.execute(text(REQUEUE), {"cause": "PERMISSION_DENIED%"})

    async def paid() -> bool:
        return [await s.balance(f"denied{i}") for i in range(3)] == [2, 2, 2]

    await s.reconciled(paid)
    await s.reconcile(passes=3)  # later passes do not pay again
    assert [len(await s.history(f"denied{i}")) for i in range(3)] == [1, 1, 1]
    rows = await credit_rows(s, *(e.event_id for e in events))
    assert all(not r["pending"] and not r["failed"] and r["wallet_transaction_id"] for r in rows)


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        (grpc.StatusCode.UNAVAILABLE, True), (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.ABORTED, True), (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.INTERNAL, True), (None, True),
        (grpc.StatusCode.FAILED_PRECONDITION, False), (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.ALREADY_EXISTS, False), (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.UNAUTHENTICATED, False),
    ],
)
def test_which_wallet_failures_are_retried(code: grpc.StatusCode | None, retry: bool) -> None:
    assert is_retryable(code) is retry
