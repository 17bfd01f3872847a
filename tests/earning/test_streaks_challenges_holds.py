"""Streaks over days, challenges with sponsor budgets, held earnings and rule versions: wallet-checked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

import earning.config
from points.earning.v1 import earning_pb2 as pb
from points_platform.client import acting_for, error_reason
from tests.earning.conftest import ADMIN, APP, StartSuite, Suite
from tests.support.rpc import ts

WATCH, LIKE, COMMENT, SHARE, LIVE, GAME, PROGRESS = 1, 2, 3, 4, 5, 6, 7
AWARDED, CAPPED, DUPLICATE, HELD, REJECTED = 1, 2, 3, 4, 5


async def create_challenge(s: Suite, request_id: str, **spec: object) -> pb.Challenge:
    fields: dict[str, object] = {
        "name": "Summer", "start_time": ts(s.clock.now()), "end_time": ts(s.clock.now() + timedelta(days=7)),
        "multiplier_bps": 15000,
    }
    fields.update(spec)
    reply = await s.stub.CreateChallenge(
        pb.CreateChallengeRequest(request_id=request_id, spec=pb.ChallengeSpec(**fields)), metadata=ADMIN  # type: ignore[arg-type]
    )
    return reply.challenge


async def join(s: Suite, challenge_id: str, user: str) -> pb.JoinChallengeResponse:
    return await s.stub.JoinChallenge(
        pb.JoinChallengeRequest(request_id=f"join-{challenge_id}-{user}", challenge_id=challenge_id, user_id=user),
        metadata=acting_for(APP, user),
    )


async def test_streak_bonus_grows_with_consecutive_days(start_suite: StartSuite) -> None:
    s = await start_suite()
    paid = []
    for day in range(4):
        paid.append((await s.record(s.event("st1", GAME, game_id="g", milestone_id=f"m{day}"))).points_awarded)
        s.clock.advance(86_400)
    assert paid == [50, 52, 55, 57]  # +5% from day 2, +10% day 3, +15% day 4 (floors)
    s.clock.advance(86_400)  # a day missed: the streak restarts
    assert (await s.record(s.event("st1", GAME, game_id="g", milestone_id="m9"))).points_awarded == 50
    assert await s.balance("st1") == sum(paid) + 50
    summary = await s.stub.GetDailySummary(pb.GetDailySummaryRequest(user_id="st1"), metadata=acting_for(APP, "st1"))
    assert summary.streak_days == 1


async def test_rule_change_applies_to_events_after_it(start_suite: StartSuite) -> None:
    s = await start_suite()
    current = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules
    before = s.clock.now()
    s.clock.advance(60)
    new = pb.Rules()
    new.CopyFrom(current)
    for rule in new.activity_rules:
        if rule.type == LIKE:
            rule.points_per_action = 7
    request = pb.UpdateRulesRequest(request_id="rules-1", rules=new, expected_version=current.version)
    updated = (await s.stub.UpdateRules(request, metadata=ADMIN)).rules
    assert updated.version == current.version + 1
    assert (await s.stub.UpdateRules(request, metadata=ADMIN)).rules.version == updated.version  # idempotent
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await s.stub.UpdateRules(
            pb.UpdateRulesRequest(request_id="rules-2", rules=new, expected_version=current.version), metadata=ADMIN
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    old_event = await s.record(s.event("rv1", LIKE, target_id="a", occurred_at=ts(before)))
    new_event = await s.record(s.event("rv1", LIKE, target_id="b"))
    assert (old_event.points_awarded, new_event.points_awarded) == (2, 7)
    assert await s.balance("rv1") == 9


async def test_challenge_multiplier_early_bonus_and_budget(start_suite: StartSuite) -> None:
    s = await start_suite()
    challenge = await create_challenge(
        s, "ch-1", regions=["US"], activity_types=[SHARE], early_join_window_seconds=3600,
        early_join_bonus_points=20, sponsor="Brand", sponsor_budget_points=30,
    )
    joined = await join(s, challenge.challenge_id, "cu1")
    assert joined.participation.early and joined.early_join_bonus_awarded == 20
    assert (await join(s, challenge.challenge_id, "cu1")).early_join_bonus_awarded == 20  # same request id: replay
    assert await s.balance("cu1") == 20
    share = await s.record(s.event("cu1", SHARE, target_id="v1"))
    assert share.points_awarded == 15  # 10 base + 5 sponsored extra
    assert [b.rule for b in share.breakdown] == [pb.RULE_KIND_BASE, pb.RULE_KIND_CHALLENGE_MULTIPLIER]
    assert share.breakdown[1].challenge_id == challenge.challenge_id
    outside = await s.record(s.event("cu1", SHARE, target_id="v2", region="FR"))
    assert outside.points_awarded == 10
    s.clock.advance(2 * 3600)
    late = await join(s, challenge.challenge_id, "cu2")
    assert not late.participation.early and late.early_join_bonus_awarded == 0
    # budget: 30 - 20 - 5 = 5 left; next share wants +5 -> fits; the one after is trimmed to 0
    assert (await s.record(s.event("cu2", SHARE, target_id="v1"))).points_awarded == 15
    trimmed = await s.record(s.event("cu2", SHARE, target_id="v2"))
    assert trimmed.points_awarded == 10 and trimmed.breakdown[-1].rule == pb.RULE_KIND_SPONSOR_BUDGET
    listing = pb.ListChallengesRequest(region="US", active_at=ts(s.clock.now()))
    listed = await s.stub.ListChallenges(listing, metadata=APP)
    assert [c.budget_spent_points for c in listed.challenges] == [30]
    none = await s.stub.ListChallenges(pb.ListChallengesRequest(region="FR"), metadata=APP)
    assert list(none.challenges) == []
    assert await s.balance("cu1") == 45 and await s.balance("cu2") == 25


async def test_challenge_progress_requires_participation(start_suite: StartSuite) -> None:
    s = await start_suite()
    challenge = await create_challenge(s, "ch-p")
    rejected = await s.record(s.event("p1", PROGRESS, challenge_id=challenge.challenge_id))
    assert rejected.status == REJECTED and rejected.rejection_reason == "NOT_A_PARTICIPANT"
    await join(s, challenge.challenge_id, "p1")
    progressed = await s.record(s.event("p1", PROGRESS, challenge_id=challenge.challenge_id))
    assert progressed.points_awarded == 15  # 10 x 1.5, unlimited (no sponsor budget)
    assert await s.balance("p1") == 15


async def test_velocity_hold_then_approve_credits_once_and_reject_never(start_suite: StartSuite) -> None:
    s = await start_suite()
    rules = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules
    rules.abuse.velocity_max_events_per_minute = 3
    await s.stub.UpdateRules(pb.UpdateRulesRequest(request_id="r-velocity", rules=rules), metadata=ADMIN)
    results = [await s.record(s.event("fast", LIKE, target_id=f"v{i}")) for i in range(5)]
    assert [r.status for r in results] == [AWARDED, AWARDED, AWARDED, HELD, HELD]
    assert results[3].breakdown[-1].rule == pb.RULE_KIND_VELOCITY_HOLD and results[3].held_earning_id
    assert await s.balance("fast") == 6
    pending = pb.ListHeldEarningsRequest(user_id="fast", state=pb.HELD_EARNING_STATE_PENDING)
    held = (await s.stub.ListHeldEarnings(pending, metadata=ADMIN)).held_earnings
    assert [h.points for h in held] == [2, 2] and {h.reason for h in held} == {"VELOCITY_LIMIT"}
    summary = await s.stub.GetDailySummary(pb.GetDailySummaryRequest(user_id="fast"), metadata=acting_for(APP, "fast"))
    assert summary.held_points == 4
    approve = pb.ResolveHeldEarningRequest(request_id="rv-1", held_earning_id=held[0].held_earning_id, approve=True)
    approved = (await s.stub.ResolveHeldEarning(approve, metadata=ADMIN)).held_earning
    assert approved.state == 2 and approved.wallet_transaction_id and approved.resolved_by == "admin"
    assert (await s.stub.ResolveHeldEarning(approve, metadata=ADMIN)).held_earning.state == 2  # replay
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await s.stub.ResolveHeldEarning(
            pb.ResolveHeldEarningRequest(request_id="rv-2", held_earning_id=held[0].held_earning_id, approve=True),
            metadata=ADMIN,
        )
    assert error_reason(twice.value) == "HELD_EARNING_ALREADY_RESOLVED"
    await s.stub.ResolveHeldEarning(
        pb.ResolveHeldEarningRequest(request_id="rv-3", held_earning_id=held[1].held_earning_id, approve=False),
        metadata=ADMIN,
    )
    assert await s.balance("fast") == 8 and len(await s.history("fast")) == 4
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await s.stub.ListHeldEarnings(pb.ListHeldEarningsRequest(), metadata=APP)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_text_with_nul_is_invalid_argument_not_internal(start_suite: StartSuite) -> None:
    """PostgreSQL text cannot hold NUL: names, sponsors and review notes are refused at the edge."""
    s = await start_suite()
    for field in ("name", "sponsor"):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await create_challenge(s, f"nul-{field}", **{field: "Sum\x00mer"})
        assert (bad.value.code(), error_reason(bad.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    resolve = pb.ResolveHeldEarningRequest(request_id="rv-nul", held_earning_id="held-x", approve=False, note="a\x00b")
    with pytest.raises(grpc.aio.AioRpcError) as note:
        await s.stub.ResolveHeldEarning(resolve, metadata=ADMIN)
    assert (note.value.code(), error_reason(note.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")


async def test_shared_device_holds_further_accounts(start_suite: StartSuite) -> None:
    s = await start_suite()
    statuses = [(await s.record(s.event(f"dv{i}", LIKE, target_id="v", device_id="shared"))).status for i in range(7)]
    assert statuses == [AWARDED] * 5 + [HELD] * 2
    assert [await s.balance(f"dv{i}") for i in range(7)] == [2] * 5 + [0, 0]


async def test_batch_credits_in_order_and_replays(start_suite: StartSuite) -> None:
    s = await start_suite()
    events = [s.event(f"b{i % 10}", WATCH, watch_seconds=120) for i in range(50)]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP)
    assert [r.event_id for r in reply.results] == [e.event_id for e in events]
    assert all(r.status == AWARDED and r.points_awarded == 2 and r.wallet_transaction_id for r in reply.results)
    again = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events[:5] + events[:1]), metadata=APP)
    assert [r.status for r in again.results] == [DUPLICATE] * 6
    assert [await s.balance(f"b{i}") for i in range(10)] == [10] * 10

    async def stream() -> AsyncIterator[pb.StreamActivitiesRequest]:
        for i in range(30):
            yield pb.StreamActivitiesRequest(event=s.event("streamer", COMMENT, target_id=f"t{i}"))
        yield pb.StreamActivitiesRequest(event=pb.ActivityEvent(event_id="bad"))

    summary = await s.stub.StreamActivities(stream(), metadata=APP)
    assert (summary.events_received, summary.events_rejected) == (31, 1)
    assert summary.points_awarded == await s.balance("streamer") > 0


async def test_a_burst_backdated_across_the_day_is_held_by_receive_time(
    start_suite: StartSuite, tmp_path: Path
) -> None:
    """A bot spreads its events' occurred_at over the 24 h lateness window: no minute of occurred_at
    holds two of them, but they all arrive at once. The receive-time bucket (3 per minute here)
    holds the fourth on, in later batches too, until it has drained."""
    rules = json.loads(Path(earning.config.DEFAULT_RULES_FILE).read_text())
    rules["abuse"]["velocity_max_events_per_minute"] = 3
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    s = await start_suite(rules_file=str(tmp_path / "rules.json"))

    def backdated(i: int, hours: float) -> pb.ActivityEvent:
        return s.event("bot", LIKE, target_id=f"v{i}", occurred_at=ts(s.clock.now() - timedelta(hours=hours)))

    burst = [backdated(i, 4.5 * i) for i in range(5)]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=burst), metadata=APP, timeout=10)
    assert [r.status for r in reply.results] == [AWARDED, AWARDED, AWARDED, HELD, HELD]
    assert reply.results[3].breakdown[-1].rule == pb.RULE_KIND_VELOCITY_HOLD

    s.clock.advance(10)  # the bucket (5) drained by 0.5: still over the limit
    assert (await s.record(backdated(5, 2))).status == HELD
    s.clock.advance(120)  # drained
    assert (await s.record(backdated(6, 3))).status == AWARDED
    assert await s.balance("bot") == 4 * 2  # held points are not credited
    held = await s.stub.ListHeldEarnings(pb.ListHeldEarningsRequest(user_id="bot"), metadata=ADMIN)
    assert [h.reason for h in held.held_earnings] == ["VELOCITY_LIMIT"] * 3
