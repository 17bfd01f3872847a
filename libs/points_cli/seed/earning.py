"""Demo seed for earning: the default rules (seeded by the service itself) and one sponsored challenge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from points.earning.v1 import earning_pb2 as pb
from points.earning.v1 import earning_pb2_grpc
from points_cli.seed.context import SeedContext

CHALLENGE_REQUEST_ID = "demo-seed-challenge-summer-sprint"


def _ts(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


async def seed(ctx: SeedContext) -> None:
    """Idempotent: the rules exist from the service's first start; the challenge uses a fixed request id."""
    stub = earning_pb2_grpc.EarningServiceStub(ctx.channel("earning"))
    admin = ctx.metadata("admin")
    await stub.GetRules(pb.GetRulesRequest(), metadata=admin, timeout=10)
    existing = await stub.ListChallenges(pb.ListChallengesRequest(page_size=500), metadata=admin, timeout=10)
    if any(c.sponsor == "Acme Sneakers" and c.name == "Summer Sprint" for c in existing.challenges):
        return  # seeded on an earlier run (the request id would also replay, but the dates moved on)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    spec = pb.ChallengeSpec(
        name="Summer Sprint", start_time=_ts(start), end_time=_ts(start + timedelta(days=30)),
        regions=["US", "GB", "DE", "FR"],
        activity_types=[pb.ACTIVITY_TYPE_WATCH_TIME, pb.ACTIVITY_TYPE_SHARE, pb.ACTIVITY_TYPE_CHALLENGE_PROGRESS],
        multiplier_bps=15_000, early_join_window_seconds=48 * 3600, early_join_bonus_points=50,
        sponsor="Acme Sneakers", sponsor_budget_points=100_000,
    )
    await stub.CreateChallenge(
        pb.CreateChallengeRequest(request_id=CHALLENGE_REQUEST_ID, spec=spec), metadata=admin, timeout=10
    )
