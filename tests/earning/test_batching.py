"""Set-based batches and coalesced single events decide exactly as events recorded one by one."""

from __future__ import annotations

import asyncio

import grpc

from points.earning.v1 import earning_pb2 as pb
from tests.earning.conftest import APP, StartSuite, Suite


def _sequence(s: Suite, user: str) -> list[pb.ActivityEvent]:
    """Events whose results depend on the earlier ones of the same user (targets, decay, caps, replays)."""
    like = s.event(user, pb.ACTIVITY_TYPE_LIKE, target_id="video-1")
    events = [
        like,
        s.event(user, pb.ACTIVITY_TYPE_LIKE, target_id="video-1"),  # same target: DUPLICATE_TARGET
        *[s.event(user, pb.ACTIVITY_TYPE_COMMENT, target_id=f"post-{k}") for k in range(6)],  # decays after 3
        s.event(user, pb.ACTIVITY_TYPE_WATCH_TIME, watch_seconds=3 * 3600, target_id="video-2"),  # type cap 120
        s.event(user, pb.ACTIVITY_TYPE_GAME_MILESTONE, game_id="g", milestone_id="m1"),
        s.event(user, pb.ACTIVITY_TYPE_GAME_MILESTONE, game_id="g", milestone_id="m1"),  # once per milestone
    ]
    return events


def _renamed(events: list[pb.ActivityEvent], user: str) -> list[pb.ActivityEvent]:
    out = []
    for e in events:
        copy = pb.ActivityEvent()
        copy.CopyFrom(e)
        copy.user_id = user
        copy.event_id = e.event_id + "-" + user
        copy.device_id = "dev-" + user
        out.append(copy)
    return out


async def test_batch_decides_like_one_by_one(start_suite: StartSuite) -> None:
    s = await start_suite()
    template = _sequence(s, "template")
    batch_events = _renamed(template, "in-batch")
    single_events = _renamed(template, "one-by-one")
    # In the batch, also a replay of the first event and its id reused with other content.
    replay = batch_events[0]
    reused = pb.ActivityEvent()
    reused.CopyFrom(batch_events[2])
    reused.target_id = "other"
    reply = await s.stub.RecordActivities(
        pb.RecordActivitiesRequest(events=[*batch_events, replay, reused]), metadata=APP, timeout=10
    )
    in_batch = list(reply.results)
    one_by_one = [await s.record(e) for e in single_events]

    assert len(in_batch) == len(batch_events) + 2
    for b, o in zip(in_batch, one_by_one, strict=False):
        assert (b.status, b.points_awarded, [(r.rule, r.points) for r in b.breakdown]) == (
            o.status, o.points_awarded, [(r.rule, r.points) for r in o.breakdown],
        )
    statuses = [r.status for r in one_by_one]
    assert statuses[1] == pb.EVENT_STATUS_CAPPED and statuses[-1] == pb.EVENT_STATUS_CAPPED
    assert any(r.rule == pb.RULE_KIND_DECAY for r in one_by_one[7].breakdown)
    assert in_batch[-2].status == pb.EVENT_STATUS_DUPLICATE
    assert in_batch[-2].points_awarded == in_batch[0].points_awarded
    assert in_batch[-1].status == pb.EVENT_STATUS_REJECTED and in_batch[-1].rejection_reason == "IDEMPOTENCY_KEY_REUSED"
    paid = sum(r.points_awarded for r in one_by_one)
    assert paid > 0
    assert await s.balance("in-batch") == await s.balance("one-by-one") == paid


async def test_concurrent_single_events_are_coalesced_and_exact(start_suite: StartSuite) -> None:
    s = await start_suite()
    coalescer = s.earning.wiring.recorder.coalescer
    before = coalescer.batches
    # 40 users at once, plus 30 comments of one user at once (decay makes each depend on the others).
    users = [s.event(f"co-{k}", pb.ACTIVITY_TYPE_LIKE, target_id="v") for k in range(40)]
    comments = [s.event("chatty", pb.ACTIVITY_TYPE_COMMENT, target_id=f"p{k}") for k in range(30)]
    results = await asyncio.gather(*(s.record(e) for e in users + comments))

    assert coalescer.batches - before < len(results)  # several events shared a transaction
    assert all(r.status == pb.EVENT_STATUS_AWARDED and r.points_awarded == 2 for r in results[:40])
    assert [await s.balance(f"co-{k}") for k in range(40)] == [2] * 40
    chatty = sorted((r.points_awarded for r in results[40:]), reverse=True)
    assert chatty[:5] == [5, 5, 5, 2, 1] and sum(chatty) == 18  # 3 full, then halved per repetition
    assert await s.balance("chatty") == 18


async def test_key_reuse_among_coalesced_singles(start_suite: StartSuite) -> None:
    s = await start_suite()
    first = s.event("reuser", pb.ACTIVITY_TYPE_LIKE, target_id="a")
    twin = pb.ActivityEvent()
    twin.CopyFrom(first)
    twin.target_id = "b"
    outcomes = await asyncio.gather(s.record(first), s.record(twin), return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(errors) == 1 and errors[0].code() == grpc.StatusCode.ALREADY_EXISTS
    assert await s.balance("reuser") == 2


async def test_large_batch_of_one_user_respects_caps(start_suite: StartSuite) -> None:
    s = await start_suite()
    events = [s.event("heavy", pb.ACTIVITY_TYPE_LIKE, target_id=f"t{k}") for k in range(1000)]
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP, timeout=30)
    results = list(reply.results)
    # The LIKE cap (50 = 25 likes) is reached inside the batch; every later event sees it.
    assert [r.points_awarded for r in results[:25]] == [2] * 25
    assert {r.status for r in results[25:]} == {pb.EVENT_STATUS_CAPPED}
    assert await s.balance("heavy") == 50


async def test_a_users_events_of_a_batch_are_paid_by_one_credit_per_day(start_suite: StartSuite) -> None:
    """One wallet transaction per user and day of a batch, for the sum; each event keeps its own
    points and breakdown and shows that transaction, also on replay. A lone event keeps its own
    credit (its id as the reference)."""
    s = await start_suite()
    mine = [s.event("many", pb.ACTIVITY_TYPE_LIKE, target_id=f"v{k}") for k in range(3)]
    mine.append(s.event("many", pb.ACTIVITY_TYPE_COMMENT, target_id="p"))
    alone = s.event("alone", pb.ACTIVITY_TYPE_LIKE, target_id="v")
    reply = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=[*mine, alone]), metadata=APP, timeout=10)
    results = list(reply.results)
    assert [r.points_awarded for r in results] == [2, 2, 2, 5, 2]
    assert all(r.status == pb.EVENT_STATUS_AWARDED for r in results)
    [entry] = await s.history("many")
    assert (entry.amount, entry.reference) == (11, mine[0].event_id)
    assert {r.wallet_transaction_id for r in results[:4]} == {entry.transaction_id}
    [single] = await s.history("alone")
    assert (single.amount, single.reference) == (2, alone.event_id)
    assert single.transaction_id == results[4].wallet_transaction_id
    again = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=mine[1:3]), metadata=APP, timeout=10)
    assert [(r.status, r.points_awarded, r.wallet_transaction_id) for r in again.results] == [
        (pb.EVENT_STATUS_DUPLICATE, 2, entry.transaction_id)
    ] * 2
    assert await s.balance("many") == 11 and len(await s.history("many")) == 1
