"""A suspended user's earnings are held, not lost: the wallet refuses their credits
USER_SUSPENDED, earning keeps them pending (neither dead-lettered nor resent on every pass) and
resends them every `suspended_retry_seconds`, so reinstatement releases them. Other users' credits in
the same batch are not held up."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from points.earning.v1 import earning_pb2 as pb
from points.wallet.v1 import wallet_pb2
from points_platform.client import acting_for
from tests.earning.conftest import ADMIN, APP, StartSuite, Suite

LIKE = 2
RETRY = 60.0


async def set_suspended(s: Suite, user: str, suspended: bool) -> None:
    fields = {
        "request_id": uuid.uuid4().hex,
        "user_id": user,
        "reason": "fake engagement",
        "ticket": "SUP-1",
        "operator_id": "agent-1",
    }
    if suspended:
        await s.wallet_stub.SuspendUser(wallet_pb2.SuspendUserRequest(**fields), metadata=ADMIN, timeout=10)
    else:
        await s.wallet_stub.ReinstateUser(wallet_pb2.ReinstateUserRequest(**fields), metadata=ADMIN, timeout=10)


async def held_credits(s: Suite) -> list[tuple[str, bool, str]]:
    async with s.earning.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT user_id, pending, last_error FROM credits WHERE held_time IS NOT NULL ORDER BY user_id")
        )
        return [tuple(r) for r in rows]


async def test_a_suspended_users_earnings_wait_for_reinstatement(start_suite: StartSuite) -> None:
    s = await start_suite(suspended_retry_seconds=RETRY)
    await set_suspended(s, "cheat", True)
    events = [s.event("cheat", LIKE, target_id="v1"), s.event("honest", LIKE, target_id="v1")]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP, timeout=10)
    assert [r.status for r in reply.results] == [pb.EVENT_STATUS_AWARDED] * 2
    assert not reply.results[0].wallet_transaction_id and reply.results[1].wallet_transaction_id
    single = await s.record(s.event("cheat", LIKE, target_id="v2"))  # one event: a single Credit call
    assert single.status == pb.EVENT_STATUS_AWARDED and not single.wallet_transaction_id
    assert await held_credits(s) == [("cheat", True, "USER_SUSPENDED")] * 2
    assert (await s.balance("cheat"), await s.balance("honest")) == (0, 2)

    # Held: shown as on their way, not dead-lettered, and not resent before the retry interval.
    summary = await s.stub.GetDailySummary(
        pb.GetDailySummaryRequest(user_id="cheat"), metadata=acting_for(APP, "cheat"), timeout=10
    )
    assert (summary.pending_credit_points, summary.failed_credit_points) == (4, 0)
    assert await s.reconcile(passes=3) == 0
    failed = await s.stub.ListFailedCredits(pb.ListFailedCreditsRequest(), metadata=ADMIN, timeout=10)
    assert list(failed.credits) == []

    await set_suspended(s, "cheat", False)
    s.clock.advance(RETRY)
    assert await s.reconcile() == 2
    assert await s.balance("cheat") == 4 and await held_credits(s) == []


async def test_credits_still_held_at_the_retry_are_held_again(start_suite: StartSuite) -> None:
    s = await start_suite(suspended_retry_seconds=RETRY)
    await set_suspended(s, "still", True)
    await s.record(s.event("still", LIKE, target_id="v"))
    s.clock.advance(RETRY)
    assert await s.reconcile() == 0  # resent once, refused again: held for another interval
    async with s.earning.engine.connect() as conn:
        attempts = (await conn.execute(text("SELECT attempts FROM credits WHERE user_id = 'still'"))).scalar_one()
    assert attempts == 2 and await held_credits(s) == [("still", True, "USER_SUSPENDED")]
