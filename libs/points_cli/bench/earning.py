"""Earning benchmark scenarios: events end to end (earning -> wallet), single and in batches of 100.

Every event is a LIKE on its own target by its own user, so each earns (no cap, no duplicate,
no velocity hold) and each call does the full work: decide, persist, credit the wallet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf.timestamp_pb2 import Timestamp

from points.earning.v1 import earning_pb2 as pb
from points.earning.v1 import earning_pb2_grpc
from points_cli.bench.harness import BenchContext, Scenario

BATCH = 100


def _event(ctx: BenchContext, i: int, k: int, now: Timestamp) -> pb.ActivityEvent:
    user = f"bench-{ctx.run_id}-{ctx.worker}-{i}-{k}"
    return pb.ActivityEvent(
        event_id=f"{user}-e", user_id=user, type=pb.ACTIVITY_TYPE_LIKE, occurred_at=now, region="US",
        device_id=user, target_id=f"video-{k}",
    )


async def build_record_activity(ctx: BenchContext) -> Callable[[int], Awaitable[None]]:
    stub = earning_pb2_grpc.EarningServiceStub(ctx.channel("earning"))
    md = ctx.metadata("app")

    async def call(i: int) -> None:
        now = Timestamp()
        now.GetCurrentTime()
        await stub.RecordActivity(pb.RecordActivityRequest(event=_event(ctx, i, 0, now)), metadata=md)

    return call


async def build_record_activities_100(ctx: BenchContext) -> Callable[[int], Awaitable[None]]:
    stub = earning_pb2_grpc.EarningServiceStub(ctx.channel("earning"))
    md = ctx.metadata("app")

    async def call(i: int) -> None:
        now = Timestamp()
        now.GetCurrentTime()
        events = [_event(ctx, i, k, now) for k in range(BATCH)]
        await stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=md)

    return call


SCENARIOS = [
    Scenario(name="record_activity", target="earning", build=build_record_activity),
    Scenario(name="record_activities_100", target="earning", build=build_record_activities_100, events_per_call=BATCH),
]
