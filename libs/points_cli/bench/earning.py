"""Earning benchmark scenarios: events end to end (earning -> wallet), single and in batches of 100.

Two workloads. `fresh`: every event is a LIKE on its own target by its own user, so each earns
(no cap, no duplicate, no velocity hold) and each call does the full work: the worst case for
rows per event. `realistic` (`bench/workload.py`): Zipf(1.1) users from a million in the app's
activity mix, two devices per user, a sponsored challenge that ~10 % of the users joined; hot
users hit caps, decay and velocity holds, and serialize on their own rows as they would in
production.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from points.earning.v1 import earning_pb2 as pb
from points.earning.v1 import earning_pb2_grpc
from points_cli.bench.harness import BenchContext, Call, Scenario
from points_cli.bench.workload import Activity, Workload

BATCH = 100
# The realistic setup joins the challenge for the joiners among the most active users: the top
# 20,000 Zipf ranks carry ~85 % of the events.
JOINED_RANKS = 20_000
KINDS = {
    "watch": pb.ACTIVITY_TYPE_WATCH_TIME,
    "like": pb.ACTIVITY_TYPE_LIKE,
    "comment": pb.ACTIVITY_TYPE_COMMENT,
    "share": pb.ACTIVITY_TYPE_SHARE,
    "live_join": pb.ACTIVITY_TYPE_LIVE_JOIN,
    "game_milestone": pb.ACTIVITY_TYPE_GAME_MILESTONE,
}


def _now() -> Timestamp:
    now = Timestamp()
    now.GetCurrentTime()
    return now


def _fresh_event(ctx: BenchContext, i: int, k: int, now: Timestamp) -> pb.ActivityEvent:
    user = f"bench-{ctx.run_id}-{ctx.worker}-{i}-{k}"
    return pb.ActivityEvent(
        event_id=f"{user}-e", user_id=user, type=pb.ACTIVITY_TYPE_LIKE, occurred_at=now, region="US",
        device_id=user, target_id=f"video-{k}",
    )


_contexts = itertools.count(1)


def _workload(ctx: BenchContext) -> Workload:
    # The same users in every worker (hot users are shared, as in production), their own draws.
    return Workload(f"bench-{ctx.run_id}", seed=(ctx.worker + 1) * 1_000 + next(_contexts))


def _realistic_event(a: Activity, seq: str, now: Timestamp, rng: random.Random) -> pb.ActivityEvent:
    event = pb.ActivityEvent(
        event_id=f"{a.user}-{seq}", user_id=a.user, type=KINDS[a.kind], occurred_at=now, region="US",
        device_id=a.device,
    )
    if a.kind == "watch":
        event.watch_seconds = rng.randrange(5, 120)
    elif a.kind == "game_milestone":
        event.game_id = "bench-game"
        event.milestone_id = f"level-{rng.randrange(1, 50)}"
    else:
        event.target_id = a.target
    return event


async def setup_realistic(ctx: BenchContext) -> None:
    """A running sponsored challenge, joined by the joiners among the most active users."""
    stub = earning_pb2_grpc.EarningServiceStub(ctx.channel("earning"))
    admin = ctx.metadata("admin")
    start = datetime.now(UTC) - timedelta(hours=1)
    begin, end = Timestamp(), Timestamp()
    begin.FromDatetime(start)
    end.FromDatetime(start + timedelta(days=7))
    spec = pb.ChallengeSpec(
        name=f"bench {ctx.run_id}", start_time=begin, end_time=end, regions=["US"],
        activity_types=[pb.ACTIVITY_TYPE_WATCH_TIME, pb.ACTIVITY_TYPE_LIKE, pb.ACTIVITY_TYPE_SHARE],
        multiplier_bps=15_000, sponsor="bench", sponsor_budget_points=10**12,
    )
    created = await stub.CreateChallenge(
        pb.CreateChallengeRequest(request_id=f"bench-{ctx.run_id}-challenge", spec=spec), metadata=admin
    )
    workload = _workload(ctx)
    joiners = [rank for rank in range(1, JOINED_RANKS + 1) if workload.joined_challenge(rank)]
    for first in range(0, len(joiners), 64):
        await asyncio.gather(*(
            stub.JoinChallenge(
                pb.JoinChallengeRequest(
                    request_id=f"bench-{ctx.run_id}-join-{rank}", challenge_id=created.challenge.challenge_id,
                    user_id=workload.user_id(rank),
                ),
                metadata=admin,
            )
            for rank in joiners[first : first + 64]
        ))


Events = Callable[[int], list[pb.ActivityEvent]]


def _fresh(size: int) -> Callable[[BenchContext], Events]:
    def events_of(ctx: BenchContext) -> Events:
        def events(i: int) -> list[pb.ActivityEvent]:
            now = _now()
            return [_fresh_event(ctx, i, k, now) for k in range(size)]

        return events

    return events_of


def _realistic(size: int) -> Callable[[BenchContext], Events]:
    def events_of(ctx: BenchContext) -> Events:
        workload, rng = _workload(ctx), random.Random(ctx.worker)

        def events(i: int) -> list[pb.ActivityEvent]:
            now = _now()
            return [
                _realistic_event(a, f"{ctx.worker}-{i}-{k}", now, rng) for k, a in enumerate(workload.activities(size))
            ]

        return events

    return events_of


def _build(events_of: Callable[[BenchContext], Events]) -> Callable[[BenchContext], Awaitable[Call]]:
    """One event per call goes to RecordActivity, more to RecordActivities."""

    async def build(ctx: BenchContext) -> Call:
        stub = earning_pb2_grpc.EarningServiceStub(ctx.channel("earning"))
        md = ctx.metadata("app")
        events = events_of(ctx)

        async def call(i: int) -> None:
            batch = events(i)
            if len(batch) == 1:
                await stub.RecordActivity(pb.RecordActivityRequest(event=batch[0]), metadata=md)
            else:
                await stub.RecordActivities(pb.RecordActivitiesRequest(events=batch), metadata=md)

        return call

    return build


SCENARIOS = [
    Scenario(name="record_activity", target="earning", build=_build(_fresh(1))),
    Scenario(name="record_activities_100", target="earning", build=_build(_fresh(BATCH)), events_per_call=BATCH),
    Scenario(
        name="realistic_record_activity", target="earning", build=_build(_realistic(1)), setup=setup_realistic,
        workload="realistic",
    ),
    Scenario(
        name="realistic_record_activities_100", target="earning", build=_build(_realistic(BATCH)),
        setup=setup_realistic, events_per_call=BATCH, workload="realistic",
    ),
]
