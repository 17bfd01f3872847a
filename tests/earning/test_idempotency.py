"""Earning's admin mutations go through the platform's idempotency module (the shared table, replies
as the proto bytes of the RPC's reply message); migration 0010 carries the rows of the old table
over and migration 0012 moves the replies stored as a Struct aside, so that old keys still replay
and still refuse a reused key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct
from sqlalchemy import text

from earning.api.mapping import rules_to_proto
from earning.config import DEFAULT_RULES_FILE
from earning.domain.model import rules_from_json
from earning.main import MIGRATIONS
from points.earning.v1 import earning_pb2 as pb
from points_platform.client import acting_for
from points_platform.db import create_engine
from points_platform.idempotency import fingerprint_from_digest, method_name
from points_platform.validation import fingerprint, request_digest
from tests.conftest import NewDatabase
from tests.earning.conftest import ADMIN, APP, StartSuite
from tests.earning.test_streaks_challenges_holds import create_challenge
from tests.support.migrations import upgrade_to
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
            "SELECT user_id, request_id, method, fingerprint, reply FROM idempotency ORDER BY created_time"
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
    assert pb.CreateChallengeResponse.FromString(rows[0].reply).challenge == challenge
    assert pb.JoinChallengeResponse.FromString(rows[1].reply) == first


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
    await upgrade_to(url, MIGRATIONS, "0009")
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


def struct_bytes(body: dict[str, Any]) -> bytes:
    reply = Struct()
    reply.update(body)
    return reply.SerializeToString(deterministic=True)


async def test_replies_stored_as_a_struct_still_replay_after_the_typed_replies(
    start_suite: StartSuite, new_database: NewDatabase
) -> None:
    """A database at revision 0011 holding admin replies as Struct bytes of the use case's JSON (what
    0010 wrote): after the upgrade to typed replies (by starting the service) their keys replay the
    reply rebuilt from that JSON and refuse other requests; new keys store the typed reply."""
    seeded = rules_to_proto(rules_from_json(json.loads(Path(DEFAULT_RULES_FILE).read_text()), version=1))
    old_rules = pb.UpdateRulesRequest(request_id="rules-old", rules=seeded)
    old_create = pb.CreateChallengeRequest(request_id="ch-old", spec=pb.ChallengeSpec(
        name="Old", start_time=ts(datetime(2026, 3, 1, tzinfo=UTC)), end_time=ts(datetime(2026, 3, 8, tzinfo=UTC)),
    ))
    url = await new_database("earning_0011")
    await upgrade_to(url, MIGRATIONS, "0011")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO challenges (challenge_id, name, start_time, end_time, regions, activity_types,"
                " multiplier_bps, early_join_window_seconds, early_join_bonus_points, sponsor,"
                " sponsor_budget_points, budget_spent_points, create_time) VALUES ('ch_old', 'Old',"
                " '2026-03-01T00:00:00Z', '2026-03-08T00:00:00Z', '{}', '{}', 15000, 0, 0, '', 0, 0,"
                " '2026-02-28T00:00:00Z')"
            ))
            for request, body in ((old_rules, {"version": 1}), (old_create, {"challenge_id": "ch_old"})):
                method = method_name(SERVICE, type(request).__name__.removesuffix("Request"))
                await conn.execute(
                    text("INSERT INTO idempotency (user_id, request_id, method, fingerprint, reply, created_time)"
                         " VALUES ('', :r, :m, :f, :b, now())"),
                    {"r": request.request_id, "m": method, "b": struct_bytes(body),
                     "f": fingerprint_from_digest(method, request_digest(request))},
                )
    finally:
        await engine.dispose()

    s = await start_suite(database_url=url)
    rules = (await s.stub.UpdateRules(old_rules, metadata=ADMIN)).rules
    current = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=ADMIN)).rules
    assert rules == current and rules.version == 1  # the seeded version: no new one was made
    created = (await s.stub.CreateChallenge(old_create, metadata=ADMIN)).challenge
    assert (created.challenge_id, created.name, created.multiplier_bps) == ("ch_old", "Old", 15000)
    current.daily_total_cap += 1
    other = pb.UpdateRulesRequest(request_id="rules-old", rules=current)
    await expect_error(s.stub.UpdateRules(other, metadata=ADMIN), grpc.StatusCode.ALREADY_EXISTS,
                       "IDEMPOTENCY_KEY_REUSED")
    new_create = pb.CreateChallengeRequest(request_id="ch-new", spec=pb.ChallengeSpec(
        name="New", start_time=ts(s.clock.now()), end_time=ts(s.clock.now() + timedelta(days=1)),
    ))
    new = await s.stub.CreateChallenge(new_create, metadata=ADMIN)
    async with s.earning.engine.connect() as conn:
        typed = (await conn.execute(text("SELECT request_id, reply FROM idempotency"))).all()
        moved = (await conn.execute(text("SELECT request_id FROM idempotency_struct_replies ORDER BY 1"))).all()
    assert [(r.request_id, pb.CreateChallengeResponse.FromString(r.reply)) for r in typed] == [("ch-new", new)]
    assert [r.request_id for r in moved] == ["ch-old", "rules-old"]
