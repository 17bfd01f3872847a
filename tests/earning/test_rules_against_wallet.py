"""Each rule, cap, decay and streak case through the real earning server, checked in the wallet."""

from __future__ import annotations

import grpc
import pytest

from points.earning.v1 import earning_pb2 as pb
from points_platform.client import acting_for, error_reason
from tests.earning.conftest import APP, Suite

WATCH, LIKE, COMMENT, SHARE, LIVE, GAME = 1, 2, 3, 4, 5, 6
AWARDED, CAPPED, DUPLICATE, HELD, REJECTED = 1, 2, 3, 4, 5


async def test_watch_time_credits_the_wallet_with_event_reference(shared_suite: Suite) -> None:
    s = shared_suite
    event = s.event("w1", WATCH, watch_seconds=185, target_id="vid1")
    result = await s.record(event)
    assert (result.status, result.points_awarded) == (AWARDED, 3)
    assert result.wallet_transaction_id
    assert [b.rule for b in result.breakdown] == [pb.RULE_KIND_BASE]
    assert await s.balance("w1") == 3
    [entry] = await s.history("w1")
    assert (entry.amount, entry.reference) == (3, event.event_id)
    assert entry.transaction_id == result.wallet_transaction_id


async def test_replay_is_duplicate_and_pays_once(shared_suite: Suite) -> None:
    s = shared_suite
    event = s.event("dup1", LIKE, target_id="v1")
    first = await s.record(event)
    again = await s.record(event)
    assert again.status == DUPLICATE and again.points_awarded == first.points_awarded == 2
    assert list(again.breakdown) == list(first.breakdown)
    assert again.wallet_transaction_id == first.wallet_transaction_id
    assert await s.balance("dup1") == 2 and len(await s.history("dup1")) == 1
    changed = pb.ActivityEvent()
    changed.CopyFrom(event)
    changed.target_id = "v2"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await s.record(changed)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(caught.value) == "IDEMPOTENCY_KEY_REUSED"


async def test_same_target_pays_once(shared_suite: Suite) -> None:
    s = shared_suite
    assert (await s.record(s.event("like1", LIKE, target_id="v1"))).points_awarded == 2
    second = await s.record(s.event("like1", LIKE, target_id="v1"))
    assert second.status == CAPPED and [b.rule for b in second.breakdown][-1] == pb.RULE_KIND_DUPLICATE_TARGET
    assert (await s.record(s.event("like1", LIKE, target_id="v2"))).points_awarded == 2
    assert await s.balance("like1") == 4 and len(await s.history("like1")) == 2


async def test_milestone_pays_once(shared_suite: Suite) -> None:
    s = shared_suite
    first = await s.record(s.event("g1", GAME, game_id="chess", milestone_id="m1"))
    second = await s.record(s.event("g1", GAME, game_id="chess", milestone_id="m1"))
    assert first.points_awarded == 50 and second.points_awarded == 0
    assert second.breakdown[-1].rule == pb.RULE_KIND_MILESTONE_ONCE
    assert await s.balance("g1") == 50


async def test_comment_decay_within_the_hour(shared_suite: Suite) -> None:
    s = shared_suite
    points = [(await s.record(s.event("c1", COMMENT, target_id=f"v{i}"))).points_awarded for i in range(6)]
    assert points == [5, 5, 5, 2, 1, 0]
    assert await s.balance("c1") == 18 and len(await s.history("c1")) == 5


async def test_daily_type_cap_and_total_cap(shared_suite: Suite) -> None:
    s = shared_suite
    first = await s.record(s.event("cap1", WATCH, watch_seconds=100 * 60))
    second = await s.record(s.event("cap1", WATCH, watch_seconds=100 * 60))
    assert (first.points_awarded, second.points_awarded) == (100, 20)
    assert second.breakdown[-1].rule == pb.RULE_KIND_DAILY_TYPE_CAP and second.breakdown[-1].points == -80
    third = await s.record(s.event("cap1", WATCH, watch_seconds=60))
    assert third.status == CAPPED
    assert await s.balance("cap1") == 120
    summary = await s.stub.GetDailySummary(pb.GetDailySummaryRequest(user_id="cap1"), metadata=acting_for(APP, "cap1"))
    watch = next(t for t in summary.types if t.type == WATCH)
    assert (watch.earned, watch.cap, summary.total_earned) == (120, 120, 120)
    assert summary.date == "2026-03-02"


async def test_single_event_outside_the_time_window_is_invalid(shared_suite: Suite) -> None:
    from datetime import timedelta

    from tests.support.rpc import ts

    s = shared_suite
    for offset, reason in ((timedelta(minutes=10), "EVENT_IN_FUTURE"), (timedelta(days=-2), "EVENT_TOO_OLD")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await s.record(s.event("late1", LIKE, target_id="v", occurred_at=ts(s.clock.now() + offset)))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error_reason(caught.value) == reason
    batch = await s.stub.RecordActivities(
        pb.RecordActivitiesRequest(
            events=[
                s.event("late1", LIKE, target_id="v", occurred_at=ts(s.clock.now() + timedelta(minutes=10))),
                s.event("late1", LIKE, target_id="v"),
            ]
        ),
        metadata=APP,
    )
    assert [(r.status, r.rejection_reason) for r in batch.results] == [(REJECTED, "EVENT_IN_FUTURE"), (AWARDED, "")]
    assert await s.balance("late1") == 2
