"""PreviewEarning: a rules dry run equals what recording the event then earns, and writes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text

from points.earning.v1 import earning_pb2 as pb
from points_platform.client import rpc_status
from tests.earning.conftest import ADMIN, APP, StartSuite, Suite
from tests.earning.test_streaks_challenges_holds import create_challenge, join
from tests.support.rpc import expect_error, ts

LIKE, COMMENT = 2, 3
AWARDED, HELD, REJECTED = 1, 4, 5
RULE_BASE, RULE_DECAY, RULE_STREAK, RULE_CHALLENGE, RULE_SPONSOR, RULE_DEVICE_HOLD = 1, 5, 6, 7, 9, 12


async def current_rules(s: Suite) -> pb.Rules:
    return (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules


def changed(rules: pb.Rules, **activity: int) -> pb.Rules:
    """A copy of `rules` with COMMENT's fields set from `activity` and a bigger streak bonus."""
    out = pb.Rules()
    out.CopyFrom(rules)
    for rule in out.activity_rules:
        if rule.type == COMMENT:
            for name, value in activity.items():
                setattr(rule, name, value)
    out.streak.bonus_bps_per_day = 2500
    return out


async def preview(s: Suite, rules: pb.Rules, event: pb.ActivityEvent) -> pb.PreviewEarningResponse:
    return await s.stub.PreviewEarning(pb.PreviewEarningRequest(rules=rules, event=event), metadata=ADMIN)


Lines = list[tuple[int, int, str, str]]


def lines(breakdown: Iterable[pb.RuleApplication]) -> Lines:
    return [(b.rule, b.points, b.detail, b.challenge_id) for b in breakdown]


def as_recorded(result: pb.EventResult) -> tuple[int, int, Lines]:
    return result.status, result.points_awarded, lines(result.breakdown)


def as_previewed(p: pb.EarningPreview) -> tuple[int, int, Lines]:
    return p.status, p.points, lines(p.breakdown)


async def database_rows(s: Suite) -> dict[str, list[str]]:
    """Every row of every earning table, as text: the whole stored state."""
    async with s.earning.engine.connect() as conn:
        tables = (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
            )
        ).scalars().all()
        return {
            table: list((await conn.execute(text(f'SELECT t::text FROM "{table}" t ORDER BY 1'))).scalars())
            for table in tables
        }


async def history(s: Suite, user: str) -> None:
    """A user with a streak, repeated comments (decay) and a challenge with a nearly spent budget."""
    challenge = await create_challenge(s, f"ch-{user}", sponsor="Acme", sponsor_budget_points=3)
    await join(s, challenge.challenge_id, user)
    await s.record(s.event(user, LIKE, target_id="yesterday"))
    s.clock.advance(86_400)
    for n in range(3):
        await s.record(s.event(user, COMMENT, target_id=f"c{n}"))


async def test_preview_equals_what_recording_then_earns(start_suite: StartSuite) -> None:
    s = await start_suite()
    await history(s, "pv1")
    rules = await current_rules(s)
    proposed = changed(rules, points_per_action=40, decay_bps=7500)

    first = s.event("pv1", COMMENT, target_id="c3")
    seen = await preview(s, proposed, first)
    assert seen.current_version == rules.version
    kinds = {b.rule for b in seen.current.breakdown}
    assert {RULE_BASE, RULE_DECAY, RULE_CHALLENGE, RULE_SPONSOR} <= kinds, seen.current
    assert RULE_STREAK in {b.rule for b in seen.proposed.breakdown}, seen.proposed
    assert seen.proposed.points != seen.current.points
    assert as_recorded(await s.record(first)) == as_previewed(seen.current)

    second = s.event("pv1", COMMENT, target_id="c4")
    seen = await preview(s, proposed, second)
    await s.stub.UpdateRules(
        pb.UpdateRulesRequest(request_id="pv-rules", rules=proposed, expected_version=rules.version), metadata=ADMIN
    )
    assert as_recorded(await s.record(second)) == as_previewed(seen.proposed)


async def test_preview_of_a_hold_and_of_a_late_event(start_suite: StartSuite) -> None:
    s = await start_suite()
    rules = await current_rules(s)
    strict = pb.Rules()
    strict.CopyFrom(rules)
    strict.abuse.max_accounts_per_device_per_day = 1
    strict.abuse.max_lateness_seconds = 3 * 86_400
    await s.record(s.event("pv2", LIKE, target_id="a", device_id="shared"))

    held = s.event("pv3", LIKE, target_id="a", device_id="shared")
    seen = await preview(s, strict, held)
    assert (seen.current.status, seen.proposed.status, seen.proposed.hold_reason) == (AWARDED, HELD, "SHARED_DEVICE")
    assert seen.proposed.points == seen.current.points > 0
    assert seen.proposed.breakdown[-1].rule == RULE_DEVICE_HOLD
    assert as_recorded(await s.record(held)) == as_previewed(seen.current)

    late = s.event("pv3", LIKE, target_id="b", occurred_at=ts(s.clock.now() - timedelta(days=2)))
    seen = await preview(s, strict, late)
    assert (seen.current.status, seen.current.rejection_reason, seen.current.points) == (REJECTED, "EVENT_TOO_OLD", 0)
    assert seen.proposed.status == AWARDED


async def test_preview_writes_nothing(start_suite: StartSuite) -> None:
    s = await start_suite()
    await history(s, "pv4")
    proposed = changed(await current_rules(s), points_per_action=40)
    before, balance = await database_rows(s), await s.balance("pv4")
    events = [
        s.event("pv4", COMMENT, target_id="c9"),
        s.event("pv-new", LIKE, target_id="x", device_id="never-seen"),
        s.event("pv4", COMMENT, target_id="c0", event_id="ev-pv4-2"),  # an id already recorded
    ]
    for event in events:
        seen = await preview(s, proposed, event)
        assert REJECTED not in (seen.current.status, seen.proposed.status)
    assert await database_rows(s) == before
    assert await s.balance("pv4") == balance


@pytest.mark.parametrize(
    ("path", "value"),
    [("time_zone", "Mars/Olympus"), ("daily_total_cap", -1), ("abuse.max_lateness_seconds", 0)],
)
async def test_bad_rules_are_refused_as_update_rules_refuses_them(
    start_suite: StartSuite, path: str, value: object
) -> None:
    s = await start_suite()
    bad = pb.Rules()
    bad.CopyFrom(await current_rules(s))
    *parents, name = path.split(".")
    target = bad
    for parent in parents:
        target = getattr(target, parent)
    setattr(target, name, value)
    event = s.event("pv5", LIKE, target_id="a")
    previewed = await expect_error(preview(s, bad, event), grpc.StatusCode.INVALID_ARGUMENT)
    updated = await expect_error(
        s.stub.UpdateRules(pb.UpdateRulesRequest(request_id="bad", rules=bad), metadata=ADMIN),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert rpc_status(previewed) == rpc_status(updated) is not None
    await expect_error(
        s.stub.PreviewEarning(pb.PreviewEarningRequest(event=event), metadata=ADMIN), grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_only_admins_may_preview(start_suite: StartSuite) -> None:
    s = await start_suite()
    request = pb.PreviewEarningRequest(rules=await current_rules(s), event=s.event("pv6", LIKE, target_id="a"))
    await expect_error(s.stub.PreviewEarning(request, metadata=APP), grpc.StatusCode.PERMISSION_DENIED)
    assert (await s.stub.PreviewEarning(request, metadata=ADMIN)).current.status == AWARDED
