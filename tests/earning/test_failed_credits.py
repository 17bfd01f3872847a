"""The dead letter through the API: ListFailedCredits shows what the wallet refused for good (or
kept failing on its side), RequeueFailedCredits puts it back once the cause is fixed, and every
credit still pays once."""

from __future__ import annotations

import json

import grpc
import pytest
from sqlalchemy import text

from earning.use_cases.recording import event_credit_id
from points.earning.v1 import earning_pb2 as pb
from points_platform.client import acting_for, error_reason
from tests.earning.conftest import ADMIN, APP, StartSuite, Suite
from tests.support.credentials import TOKENS
from tests.support.wait import HANG_SECONDS

LIKE = 2


async def failed(s: Suite, user_id: str = "") -> list[pb.FailedCredit]:
    """Every dead-lettered credit, two per page (so paging is exercised)."""
    credits: list[pb.FailedCredit] = []
    token = ""
    while True:
        reply = await s.stub.ListFailedCredits(
            pb.ListFailedCreditsRequest(user_id=user_id, page_size=2, page_token=token),
            metadata=ADMIN, timeout=HANG_SECONDS,
        )
        credits.extend(reply.credits)
        token = reply.next_page_token
        if not token:
            return credits


async def daily_summary(s: Suite, user_id: str) -> pb.GetDailySummaryResponse:
    return await s.stub.GetDailySummary(
        pb.GetDailySummaryRequest(user_id=user_id), metadata=acting_for(APP, user_id), timeout=HANG_SECONDS
    )


async def requeue(s: Suite, request_id: str, ids: list[str]) -> pb.RequeueFailedCreditsResponse:
    return await s.stub.RequeueFailedCredits(
        pb.RequeueFailedCreditsRequest(request_id=request_id, credit_ids=ids), metadata=ADMIN, timeout=HANG_SECONDS
    )


async def test_failed_credits_are_listed_and_requeued_once_the_cause_is_fixed(start_suite: StartSuite) -> None:
    # earning presents the redemption caller's token: the wallet refuses every credit for good
    s = await start_suite(tokens_json=json.dumps({**TOKENS, "earning": TOKENS["redemption"]}))
    events = [s.event(f"denied{i}", LIKE, target_id="v") for i in range(3)]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP, timeout=HANG_SECONDS)
    assert all(r.status == pb.EVENT_STATUS_AWARDED and not r.wallet_transaction_id for r in reply.results)
    assert await s.reconcile(passes=3) == 0  # later passes resend nothing: the refusal was final

    listed = await failed(s)
    assert sorted(f.user_id for f in listed) == ["denied0", "denied1", "denied2"]
    assert all(f.failure.startswith("PERMISSION_DENIED") and f.attempts == 1 and f.amount == 2 for f in listed)
    assert [f.reference for f in await failed(s, user_id="denied1")] == [events[1].event_id]
    ids = [f.credit_id for f in listed]
    summary = await daily_summary(s, "denied0")
    assert (summary.total_earned, summary.pending_credit_points, summary.failed_credit_points) == (2, 0, 2)

    # an unknown id refuses the whole request: nothing is requeued
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await requeue(s, "requeue-typo", [*ids, "no-such-credit"])
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(unknown.value) == "CREDIT_NOT_FOUND"
    assert len(await failed(s)) == 3

    # the operator fixes the token (restart), then requeues: each credit pays exactly once
    await s.restart_earning(tokens_json=json.dumps(TOKENS))
    done = await requeue(s, "requeue-1", ids)
    assert sorted(done.requeued_credit_ids) == sorted(ids) and not done.unchanged_credit_ids
    assert [await s.balance(f"denied{i}") for i in range(3)] == [2, 2, 2]  # sent at once
    assert await failed(s) == []
    summary = await daily_summary(s, "denied0")
    assert (summary.total_earned, summary.pending_credit_points, summary.failed_credit_points) == (2, 0, 0)

    # the same request replays its answer; a new one finds nothing left to requeue; no double pay
    assert await requeue(s, "requeue-1", ids) == done
    again = await requeue(s, "requeue-2", ids)
    assert not again.requeued_credit_ids and sorted(again.unchanged_credit_ids) == sorted(ids)
    await s.reconcile(passes=3)
    assert [len(await s.history(f"denied{i}")) for i in range(3)] == [1, 1, 1]
    assert [await s.balance(f"denied{i}") for i in range(3)] == [2, 2, 2]


async def test_the_dead_letter_is_for_admins_and_checks_its_input(start_suite: StartSuite) -> None:
    s = await start_suite()
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await s.stub.ListFailedCredits(pb.ListFailedCreditsRequest(), metadata=APP, timeout=HANG_SECONDS)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for request in (
        pb.RequeueFailedCreditsRequest(request_id="r1"),  # no ids
        pb.RequeueFailedCreditsRequest(request_id="r2", credit_ids=["x"] * 1001),  # too many
        pb.RequeueFailedCreditsRequest(credit_ids=["x"]),  # no request id
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await s.stub.RequeueFailedCredits(request, metadata=ADMIN, timeout=HANG_SECONDS)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(bad.value)
    with pytest.raises(grpc.aio.AioRpcError) as token:
        await s.stub.ListFailedCredits(
            pb.ListFailedCreditsRequest(page_token="garbage"), metadata=ADMIN, timeout=HANG_SECONDS
        )
    assert error_reason(token.value) == "INVALID_PAGE_TOKEN"


async def set_wallet_rejects(s: Suite, user_id: str, rejects: bool) -> None:
    """A fault inside the wallet: its database refuses every ledger transaction of one user ("*":
    of everyone), so the wallet fails those credits on its side (INTERNAL), alone or in a batch."""
    async with s.wallet.engine.begin() as conn:
        if rejects:
            await conn.execute(text(
                "CREATE FUNCTION reject_user() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF TG_ARGV[0] IN (NEW.user_id, '*') THEN RAISE EXCEPTION 'rejected by test'; END IF;"
                " RETURN NEW; END $$"
            ))
            await conn.execute(text(
                "CREATE TRIGGER reject_user BEFORE INSERT ON transactions FOR EACH ROW"
                f" EXECUTE FUNCTION reject_user('{user_id}')"
            ))
        else:
            await conn.execute(text("DROP TRIGGER reject_user ON transactions"))
            await conn.execute(text("DROP FUNCTION reject_user()"))


async def wallet_errors(s: Suite, credit_id: str) -> int:
    async with s.earning.engine.connect() as conn:
        row = await conn.execute(text("SELECT wallet_errors FROM credits WHERE request_id = :id"), {"id": credit_id})
        return int(row.scalar_one())


async def test_a_credit_the_wallet_fails_on_its_side_is_isolated_then_dead_lettered_at_the_limit(
    start_suite: StartSuite,
) -> None:
    s = await start_suite(wallet_error_limit=3, wallet_timeout_seconds=10.0)  # slow failing calls under load
    await set_wallet_rejects(s, "poison", True)
    users = ["healthy1", "poison", "healthy2", "healthy3"]
    events = [s.event(u, LIKE, target_id="v") for u in users]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP, timeout=HANG_SECONDS)
    assert all(r.status == pb.EVENT_STATUS_AWARDED for r in reply.results)
    # the batch was split around the failing entry: its neighbours are credited in the same call
    assert [bool(r.wallet_transaction_id) for r in reply.results] == [True, False, True, True]

    async def dead_lettered() -> bool:
        return len(await failed(s)) == 1

    await s.reconciled(dead_lettered)
    (dead,) = await failed(s)
    assert dead.user_id == "poison" and dead.failure.startswith("INTERNAL")
    assert await wallet_errors(s, dead.credit_id) == 3  # the limit; `attempts` also counts any timeout
    await s.reconcile(passes=3)  # dead: later reconciliation passes leave it alone
    assert [f.attempts for f in await failed(s)] == [dead.attempts]

    # the wallet is fixed; the operator requeues; it pays once, the others were never touched again
    await set_wallet_rejects(s, "poison", False)
    done = await requeue(s, "requeue-poison", [dead.credit_id])
    assert list(done.requeued_credit_ids) == [dead.credit_id]

    async def paid() -> bool:
        return await s.balance("poison") == 2

    await s.reconciled(paid)
    await s.reconcile(passes=3)  # later reconciliation passes pay nothing more
    assert [await s.balance(u) for u in users] == [2, 2, 2, 2]
    assert [len(await s.history(u)) for u in users] == [1, 1, 1, 1]


async def test_a_wallet_failing_every_credit_is_waited_out_not_dead_lettered(start_suite: StartSuite) -> None:
    """INTERNAL for everyone (no credit succeeds): an outage, not poison entries. Nothing counts a
    wallet error or reaches the dead letter; once the wallet is fixed every credit pays once."""
    s = await start_suite(wallet_error_limit=2, wallet_timeout_seconds=10.0)
    await set_wallet_rejects(s, "*", True)
    users = [f"outage{i}" for i in range(3)]
    events = [s.event(u, LIKE, target_id="v") for u in users]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP, timeout=HANG_SECONDS)
    assert [bool(r.wallet_transaction_id) for r in reply.results] == [False, False, False]
    await s.reconcile(passes=5)  # several reconciliation passes, each failing every credit
    assert await failed(s) == []
    assert [await wallet_errors(s, event_credit_id(e.event_id)) for e in events] == [0, 0, 0]

    await set_wallet_rejects(s, "*", False)

    async def paid() -> bool:
        return [await s.balance(u) for u in users] == [2, 2, 2]

    await s.reconciled(paid)
    assert [len(await s.history(u)) for u in users] == [1, 1, 1]


async def test_the_summary_counts_an_approved_held_earning_the_wallet_refused(start_suite: StartSuite) -> None:
    """GetDailySummary's failed_credit_points covers approved held earnings, not only events.
    Earning presents the payments caller's token: the wallet refuses its POINTS credits for good."""
    s = await start_suite(tokens_json=json.dumps({**TOKENS, "earning": TOKENS["payments"]}))
    rules = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules
    rules.abuse.velocity_max_events_per_minute = 1
    await s.stub.UpdateRules(pb.UpdateRulesRequest(request_id="r-velocity", rules=rules), metadata=ADMIN)
    first, second = [await s.record(s.event("heldfail", LIKE, target_id=f"v{i}")) for i in range(2)]
    assert (first.status, second.status) == (pb.EVENT_STATUS_AWARDED, pb.EVENT_STATUS_HELD_FOR_REVIEW)
    approve = pb.ResolveHeldEarningRequest(
        request_id="rv-heldfail", held_earning_id=second.held_earning_id, approve=True
    )
    await s.stub.ResolveHeldEarning(approve, metadata=ADMIN)
    summary = await daily_summary(s, "heldfail")
    assert (summary.total_earned, summary.held_points) == (4, 0)
    assert (summary.pending_credit_points, summary.failed_credit_points) == (0, 4)
    assert await s.balance("heldfail") == 0
