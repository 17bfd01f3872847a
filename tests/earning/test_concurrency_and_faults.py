"""Real concurrency against the sponsor budget and event ids, and the wallet going away."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from sqlalchemy import text

from points.earning.v1 import earning_pb2 as pb
from points_platform.client import acting_for
from tests.earning.conftest import ADMIN, APP, StartSuite
from tests.support.rpc import ts
from wallet.main import start as start_wallet

GAME, LIKE, WATCH = 6, 2, 1
AWARDED, DUPLICATE = 1, 3


async def test_hundred_users_race_a_sponsor_budget(start_suite: StartSuite) -> None:
    s = await start_suite()
    spec = pb.ChallengeSpec(
        name="Race", start_time=ts(s.clock.now()), end_time=ts(s.clock.now() + timedelta(days=1)),
        multiplier_bps=40000, sponsor="Brand", sponsor_budget_points=10_000,
    )
    created = await s.stub.CreateChallenge(pb.CreateChallengeRequest(request_id="race", spec=spec), metadata=ADMIN)
    challenge = created.challenge
    users = [f"racer{i}" for i in range(100)]
    await asyncio.gather(
        *(
            s.stub.JoinChallenge(
                pb.JoinChallengeRequest(request_id=f"j-{u}", challenge_id=challenge.challenge_id, user_id=u),
                metadata=acting_for(APP, u),
            )
            for u in users
        )
    )
    events = [s.event(u, GAME, game_id="g", milestone_id=f"m{k}") for u in users for k in range(2)]
    results = await asyncio.gather(*(s.record(e) for e in events))  # 200 concurrent calls, each wants +150
    sponsored = sum(b.points for r in results for b in r.breakdown if b.challenge_id == challenge.challenge_id)
    listed = await s.stub.ListChallenges(pb.ListChallengesRequest(), metadata=APP)
    spent = listed.challenges[0].budget_spent_points
    assert spent == sponsored == 10_000
    assert all(r.status == AWARDED for r in results)
    assert sum(r.points_awarded for r in results) == 200 * 50 + 10_000
    balances = await asyncio.gather(*(s.balance(u) for u in users))
    assert sum(balances) == 200 * 50 + 10_000


async def test_same_event_twenty_times_concurrently_pays_once(start_suite: StartSuite) -> None:
    s = await start_suite()
    event = s.event("twin", WATCH, watch_seconds=600)
    results = await asyncio.gather(*(s.record(event) for _ in range(20)))
    assert sorted(r.status for r in results) == [AWARDED] + [DUPLICATE] * 19
    assert {r.points_awarded for r in results} == {10}
    assert await s.balance("twin") == 10 and len(await s.history("twin")) == 1


async def test_wallet_outage_is_repaired_by_reconciliation(start_suite: StartSuite) -> None:
    s = await start_suite()
    port = s.wallet.port
    await s.close_channels()
    await s.wallet.stop()
    single = [s.event(f"out{i}", LIKE, target_id="v") for i in range(5)]
    batch = [s.event(f"out{i}", WATCH, watch_seconds=300) for i in range(5)]
    s.__post_init__()  # fresh client channels for the rest of the test
    results = [await s.record(e) for e in single]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=batch), metadata=APP)
    decided = results + list(reply.results)
    assert all(r.status == AWARDED and not r.wallet_transaction_id for r in decided)
    async with s.earning.engine.connect() as conn:
        pending = (await conn.execute(text("SELECT count(*) FROM credits WHERE pending"))).scalar_one()
    assert pending == 10
    summary = await s.stub.GetDailySummary(pb.GetDailySummaryRequest(user_id="out0"), metadata=acting_for(APP, "out0"))
    assert (summary.total_earned, summary.pending_credit_points, summary.failed_credit_points) == (7, 7, 0)

    s.wallet = await start_wallet(s.wallet_settings.model_copy(update={"port": port}), clock=s.clock, sweeper=False)

    async def all_credited() -> bool:
        return [await s.balance(f"out{i}") for i in range(5)] == [7] * 5

    await s.reconciled(all_credited)
    for e in single:  # a replay now shows the credit made by the reconciliation loop
        again = await s.record(e)
        assert again.status == DUPLICATE and again.wallet_transaction_id
    await s.reconcile(passes=3)  # further reconciliation passes must not pay again
    for i in range(5):
        assert len(await s.history(f"out{i}")) == 2
    summary = await s.stub.GetDailySummary(pb.GetDailySummaryRequest(user_id="out0"), metadata=acting_for(APP, "out0"))
    assert (summary.total_earned, summary.pending_credit_points, summary.failed_credit_points) == (7, 0, 0)


async def test_callers_outside_the_policy_are_refused(start_suite: StartSuite) -> None:
    s = await start_suite()
    for call in (
        s.stub.UpdateRules(pb.UpdateRulesRequest(request_id="x", rules=pb.Rules()), metadata=APP),
        s.stub.CreateChallenge(pb.CreateChallengeRequest(request_id="x", spec=pb.ChallengeSpec()), metadata=APP),
    ):
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
        else:
            raise AssertionError("expected PERMISSION_DENIED")
