"""Earning's admin mutations go through the platform's idempotency module (the shared table, replies
as proto bytes), and migration 0010 carries the rows of the old table over so that old keys still
replay and still refuse a reused key."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import grpc
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from earning.main import MIGRATIONS
from points.earning.v1 import earning_pb2 as pb
from points_platform.client import acting_for
from points_platform.db import create_engine
from points_platform.idempotency import fingerprint_from_digest, method_name
from points_platform.validation import fingerprint, request_digest
from tests.conftest import NewDatabase
from tests.earning.conftest import ADMIN, APP, StartSuite
from tests.earning.test_streaks_challenges_holds import create_challenge
from tests.support.rpc import expect_error, ts

SERVICE = "points.earning.v1.EarningService"


async def test_admin_replies_are_stored_once_in_the_shared_table(start_suite: StartSuite) -> None:
    s = await start_suite()
    challenge = await create_challenge(s, "ch-idem", early_join_window_seconds=3600, early_join_bonus_points=7)
    join = pb.JoinChallengeRequest(request_id="join-idem", challenge_id=challenge.challenge_id, user_id="idem1")
    first = await s.stub.JoinChallenge(join, metadata=acting_for(APP, "idem1"))
    assert first.early_join_bonus_awarded == 7
    s.clock.advance(7200)  # a second run would now be late: a replay answers as the first call did
    assert await s.stub.JoinChallenge(join, metadata=acting_for(APP, "idem1")) == first
    assert await s.balance("idem1") == 7

    again = pb.CreateChallengeRequest(request_id="ch-idem", spec=pb.ChallengeSpec(
        name="Other", start_time=ts(s.clock.now()), end_time=ts(s.clock.now() + timedelta(days=1)),
    ))
    await expect_error(s.stub.CreateChallenge(again, metadata=ADMIN), grpc.StatusCode.ALREADY_EXISTS,
                       "IDEMPOTENCY_KEY_REUSED")
    async with s.earning.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT user_id, request_id, method, fingerprint FROM idempotency ORDER BY created_time"
        ))).all()
    create = pb.CreateChallengeRequest(request_id="ch-idem", spec=pb.ChallengeSpec(
        name="Summer", start_time=challenge.start_time, end_time=challenge.end_time, multiplier_bps=15000,
        early_join_window_seconds=3600, early_join_bonus_points=7,
    ))
    assert [(r.user_id, r.request_id, r.method) for r in rows] == [
        ("", "ch-idem", f"{SERVICE}.CreateChallenge"), ("idem1", "join-idem", f"{SERVICE}.JoinChallenge"),
    ]
    assert bytes(rows[0].fingerprint) == fingerprint_from_digest(
        method_name(SERVICE, "CreateChallenge"), request_digest(create)
    )


async def test_the_upgrade_carries_old_replies_over(start_suite: StartSuite, new_database: NewDatabase) -> None:
    """A database at revision 0009 holding replies in the old table: after the upgrade (by starting
    the service) their keys replay the old replies and refuse other requests."""
    old_join = pb.JoinChallengeRequest(request_id="join-old", challenge_id="ch_gone", user_id="old1")
    old_requeue = pb.RequeueFailedCreditsRequest(request_id="rq-old", credit_ids=["c1", "c2"])
    replies: dict[str, tuple[pb.JoinChallengeRequest | pb.RequeueFailedCreditsRequest, dict[str, Any]]] = {
        "JoinChallenge": (old_join, {
            "participation": {"challenge_id": "ch_gone", "user_id": "old1", "join_time": "2026-03-01T10:00:00+00:00",
                              "early": True, "bonus": 7},
            "bonus_awarded": 7,
        }),
        "RequeueFailedCredits": (old_requeue, {"requeued": ["c1"], "unchanged": ["c2"]}),
    }

    url = await new_database("earning_0009")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    await asyncio.to_thread(command.upgrade, config, "0009")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for method, (request, reply) in replies.items():
                await conn.execute(
                    text("INSERT INTO idempotency (method, request_id, fingerprint, response, create_time)"
                         " VALUES (:m, :r, :f, :b, now())"),
                    {"m": method, "r": request.request_id, "f": fingerprint(request),
                     "b": json.dumps(reply).encode()},
                )
    finally:
        await engine.dispose()

    s = await start_suite(database_url=url)
    joined = await s.stub.JoinChallenge(old_join, metadata=acting_for(APP, "old1"))
    assert (joined.participation.challenge_id, joined.participation.early, joined.early_join_bonus_awarded) == (
        "ch_gone", True, 7,
    )  # the challenge does not exist: only the carried-over reply can answer
    requeued = await s.stub.RequeueFailedCredits(old_requeue, metadata=ADMIN)
    assert (list(requeued.requeued_credit_ids), list(requeued.unchanged_credit_ids)) == (["c1"], ["c2"])
    reused = pb.RequeueFailedCreditsRequest(request_id="rq-old", credit_ids=["c3"])
    await expect_error(s.stub.RequeueFailedCredits(reused, metadata=ADMIN), grpc.StatusCode.ALREADY_EXISTS,
                       "IDEMPOTENCY_KEY_REUSED")
