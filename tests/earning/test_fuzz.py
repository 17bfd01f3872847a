"""Hypothesis-generated events and admin requests: never INTERNAL/UNKNOWN.

Hypothesis drives a synchronous test in a worker thread; each example's call runs on the
session event loop, where the servers and channel live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points.earning.v1 import earning_pb2 as pb
from points_platform.client import acting_for, fits_header
from tests.earning.conftest import ADMIN, APP, Suite
from tests.support.rpc import FORBIDDEN, on_loop, status_of, ts

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
TEXT = st.one_of(st.text(max_size=140), st.sampled_from(["", "u1", "v1", "x" * 129, "a\x00b", "US", "g:1"]))
IDS = st.one_of(st.sampled_from(["u1", "u2", "fz-user", "v1", "m1", "g1"]), TEXT)



async def test_random_requests_never_crash(shared_suite: Suite) -> None:
    s = shared_suite
    loop = asyncio.get_running_loop()
    now = s.clock.now()
    near = st.integers(-3 * 86_400, 3600).map(lambda d: ts(now + timedelta(seconds=d)))
    stamps = near | st.builds(Timestamp, seconds=INT64, nanos=INT32)

    @st.composite
    def events(draw: st.DrawFn) -> pb.ActivityEvent:
        return pb.ActivityEvent(
            event_id=draw(st.sampled_from(["fz-e1", "fz-e2"]) | st.uuids().map(str) | TEXT),
            user_id=draw(IDS), type=pb.ActivityType.ValueType(draw(st.integers(-2, 9))),
            region=draw(st.sampled_from(["US", "FR", "us", ""]) | TEXT),
            device_id=draw(IDS), watch_seconds=draw(INT64 | st.integers(0, 7200)), target_id=draw(IDS),
            game_id=draw(IDS), milestone_id=draw(IDS), challenge_id=draw(IDS),
            **({"occurred_at": draw(stamps)} if draw(st.integers(0, 9)) else {}),
        )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        event=events(), batch=st.lists(events(), max_size=4), token=TEXT, date=TEXT, size=INT32,
        rules=st.builds(
            pb.Rules, time_zone=st.sampled_from(["UTC", "Europe/Paris", "Mars/X", ""]) | TEXT, daily_total_cap=INT64,
            activity_rules=st.lists(
                st.builds(pb.ActivityRule, type=st.integers(-1, 8), points_per_action=INT64, decay_bps=INT32,
                          decay_after=INT32, decay_window_seconds=INT64, daily_cap=INT64), max_size=3
            ),
            streak=st.builds(pb.StreakRule, min_days=INT32, bonus_bps_per_day=INT32, max_bonus_bps=INT32),
        ),
        spec=st.builds(
            pb.ChallengeSpec, name=TEXT, start_time=stamps, end_time=stamps, regions=st.lists(TEXT, max_size=2),
            activity_types=st.lists(st.integers(-1, 9), max_size=2), multiplier_bps=INT32,
            early_join_window_seconds=INT64, early_join_bonus_points=INT64, sponsor=TEXT, sponsor_budget_points=INT64,
        ),
    )
    def check(event: pb.ActivityEvent, batch: list[pb.ActivityEvent], token: str, date: str, size: int,
              rules: pb.Rules, spec: pb.ChallengeSpec) -> None:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: s.stub.RecordActivity(pb.RecordActivityRequest(event=event), metadata=APP),
            lambda: s.stub.RecordActivities(pb.RecordActivitiesRequest(events=batch), metadata=APP),
            lambda: s.stub.GetDailySummary(  # acting for the user it names, when the id fits in a header
                pb.GetDailySummaryRequest(user_id=event.user_id, date=date),
                metadata=acting_for(APP, event.user_id) if fits_header(event.user_id) else APP,
            ),
            lambda: s.stub.ListChallenges(
                pb.ListChallengesRequest(region=event.region, page_size=size, page_token=token), metadata=APP
            ),
            lambda: s.stub.ListHeldEarnings(
                pb.ListHeldEarningsRequest(
                    user_id=event.user_id, state=pb.HeldEarningState.ValueType(size % 6), page_token=token
                ),
                metadata=ADMIN,
            ),
            lambda: s.stub.UpdateRules(
                pb.UpdateRulesRequest(request_id=token or "r", rules=rules, expected_version=size), metadata=ADMIN
            ),
            lambda: s.stub.CreateChallenge(
                pb.CreateChallengeRequest(request_id=token or "c", spec=spec), metadata=ADMIN
            ),
            lambda: s.stub.JoinChallenge(
                pb.JoinChallengeRequest(
                    request_id=token or "j", challenge_id=event.challenge_id, user_id=event.user_id
                ),
                metadata=acting_for(APP, event.user_id) if fits_header(event.user_id) else APP,
            ),
            lambda: s.stub.ResolveHeldEarning(
                pb.ResolveHeldEarningRequest(
                    request_id=token or "h", held_earning_id=event.target_id, approve=True, note=date
                ),
                metadata=ADMIN,
            ),
        ]

        async def run() -> list[grpc.StatusCode]:
            return [await status_of(c) for c in calls]

        codes = on_loop(loop, run())
        assert not FORBIDDEN & set(codes), codes

    await asyncio.to_thread(check)
