"""Two earning servers on one database, as replicas run (docs/scaling.md): each with its own pool,
coalescer and reconciliation loop. The sponsor budget, exactly-once events and the shared-device
limit hold across servers, not only across one server's batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import pytest

from earning.main import start as start_earning
from points.earning.v1 import earning_pb2 as pb
from points.earning.v1 import earning_pb2_grpc
from points_platform.client import acting_for
from tests.earning.conftest import ADMIN, APP, StartSuite, Suite
from tests.support.rpc import ts

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from points.earning.v1.earning_pb2_grpc import EarningServiceAsyncStub as Stub

LIKE, WATCH, GAME = 2, 1, 6
AWARDED, DUPLICATE, HELD = 1, 3, 4
DEVICE_LIMIT = 5  # max_accounts_per_device_per_day of the default rules


@pytest.fixture
async def replicas(start_suite: StartSuite) -> AsyncIterator[tuple[Suite, list[Stub]]]:
    """A wallet, earning replica A (the suite's) and replica B on A's database; stubs of both."""
    s = await start_suite()
    assert s.earning_settings is not None
    second = await start_earning(s.earning_settings, clock=s.clock)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{second.port}")
    try:
        yield s, [s.stub, earning_pb2_grpc.EarningServiceStub(channel)]
    finally:
        await channel.close()
        await second.stop()


async def record(stub: Stub, event: pb.ActivityEvent) -> pb.EventResult:
    reply = await stub.RecordActivity(pb.RecordActivityRequest(event=event), metadata=APP, timeout=20)
    return reply.result


async def test_a_sponsor_budget_raced_through_two_replicas_is_never_overspent(
    replicas: tuple[Suite, list[Stub]],
) -> None:
    s, stubs = replicas
    spec = pb.ChallengeSpec(
        name="Race",
        start_time=ts(s.clock.now()),
        end_time=ts(s.clock.now() + timedelta(days=1)),
        multiplier_bps=40000,
        sponsor="Brand",
        sponsor_budget_points=5_000,
    )
    challenge = (
        await s.stub.CreateChallenge(pb.CreateChallengeRequest(request_id="race2", spec=spec), metadata=ADMIN)
    ).challenge
    users = [f"rep{i}" for i in range(60)]
    await asyncio.gather(
        *(
            stubs[i % 2].JoinChallenge(
                pb.JoinChallengeRequest(request_id=f"j-{u}", challenge_id=challenge.challenge_id, user_id=u),
                metadata=acting_for(APP, u),
            )
            for i, u in enumerate(users)
        )
    )
    events = [s.event(u, GAME, game_id="g", milestone_id=f"m{k}") for u in users for k in range(2)]
    results = await asyncio.gather(*(record(stubs[i % 2], e) for i, e in enumerate(events)))  # each wants +150
    sponsored = sum(b.points for r in results for b in r.breakdown if b.challenge_id == challenge.challenge_id)
    spent = (await s.stub.ListChallenges(pb.ListChallengesRequest(), metadata=APP)).challenges[0].budget_spent_points
    assert spent == sponsored == 5_000
    assert all(r.status == AWARDED for r in results)
    assert sum(r.points_awarded for r in results) == 120 * 50 + 5_000
    assert sum(await asyncio.gather(*(s.balance(u) for u in users))) == 120 * 50 + 5_000


async def test_one_event_sent_to_both_replicas_pays_once(
    replicas: tuple[Suite, list[Stub]],
) -> None:
    s, stubs = replicas
    event = s.event("twin2", WATCH, watch_seconds=600)
    results = await asyncio.gather(*(record(stubs[i % 2], event) for i in range(20)))
    assert sorted(r.status for r in results) == [AWARDED] + [DUPLICATE] * 19
    assert {r.points_awarded for r in results} == {10}
    assert await s.balance("twin2") == 10 and len(await s.history("twin2")) == 1


async def test_the_shared_device_limit_counts_accounts_from_both_replicas(
    replicas: tuple[Suite, list[Stub]],
) -> None:
    s, stubs = replicas
    events = [s.event(f"kid{i}", LIKE, target_id="v", device_id="family-tablet") for i in range(12)]
    results = await asyncio.gather(*(record(stubs[i % 2], e) for i, e in enumerate(events)))
    statuses = sorted(r.status for r in results)
    assert statuses == [AWARDED] * DEVICE_LIMIT + [HELD] * (12 - DEVICE_LIMIT), statuses
    paid = await asyncio.gather(*(s.balance(f"kid{i}") for i in range(12)))
    assert sorted(paid) == [0] * (12 - DEVICE_LIMIT) + [2] * DEVICE_LIMIT
