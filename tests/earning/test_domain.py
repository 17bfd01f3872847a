"""The earning rules as pure functions: no database, no gRPC."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import earning
from earning.domain.batch import BatchFacts, KnownFacts
from earning.domain.challenge import Challenge, ChallengeSpec, matching, validate_challenge
from earning.domain.credit import MIXED_REASON, PendingCredit, one_credit_per_user_day
from earning.domain.evaluation import (
    ChallengeTerms,
    EventFacts,
    ReceiveRate,
    Streak,
    decayed,
    early_join_bonus,
    evaluate,
    streak_bonus_bps,
    timing_problem,
)
from earning.domain.model import (
    AbuseRule,
    ActivityEvent,
    ActivityType,
    EventStatus,
    HoldReason,
    RuleError,
    RuleKind,
    Rules,
    rules_from_json,
    rules_to_json,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULES = rules_from_json(json.loads((Path(earning.__file__).parent / "default_rules.json").read_text()), 1)


def event(kind: ActivityType = ActivityType.LIKE, **kw: object) -> ActivityEvent:
    fields: dict[str, object] = {
        "event_id": "e1", "user_id": "u1", "type": kind, "occurred_at": NOW, "region": "US",
        "device_id": "d1", "target_id": "v1",
    }
    fields.update(kw)
    return ActivityEvent(**fields)  # type: ignore[arg-type]


def kinds(decision: object) -> list[RuleKind]:
    return [step.rule for step in decision.breakdown]  # type: ignore[attr-defined]


def test_default_rules_round_trip_through_json() -> None:
    again = rules_from_json(rules_to_json(RULES), 1)
    assert again == RULES


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "rules.time_zone"),
        ({"daily_total_cap": -1}, "rules.daily_total_cap"),
        ({"streak": {"min_days": 2, "bonus_bps_per_day": 10**9, "max_bonus_bps": 1}}, "rules.streak.bonus_bps_per_day"),
        ({"abuse": {"max_lateness_seconds": 0}}, "rules.abuse.max_lateness_seconds"),
    ],
)
def test_invalid_rules_name_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(RuleError) as caught:
        rules_from_json(rules_to_json(RULES) | patch)
    assert caught.value.field == field


def test_unknown_activity_name_is_an_error() -> None:
    with pytest.raises(RuleError):
        rules_from_json({"activities": {"JUMP": {"points_per_action": 1}}})


def test_watch_time_pays_per_full_minute() -> None:
    decision = evaluate(event(ActivityType.WATCH_TIME, watch_seconds=179), RULES, EventFacts())
    assert decision.status == EventStatus.AWARDED and decision.points_awarded == 2
    short = evaluate(event(ActivityType.WATCH_TIME, watch_seconds=59), RULES, EventFacts())
    assert short.status == EventStatus.CAPPED and short.points_awarded == 0


def test_same_target_pays_once() -> None:
    decision = evaluate(event(), RULES, EventFacts(target_already_paid=True))
    assert decision.status == EventStatus.CAPPED and decision.points_awarded == 0
    assert kinds(decision) == [RuleKind.BASE, RuleKind.DUPLICATE_TARGET]
    assert sum(step.points for step in decision.breakdown) == 0


def test_milestone_pays_once() -> None:
    milestone = event(ActivityType.GAME_MILESTONE, game_id="g", milestone_id="m")
    assert evaluate(milestone, RULES, EventFacts()).points_awarded == 50
    again = evaluate(milestone, RULES, EventFacts(milestone_already_paid=True))
    assert again.points_awarded == 0 and RuleKind.MILESTONE_ONCE in kinds(again)


def test_decay_halves_each_repetition_past_the_threshold() -> None:
    assert [decayed(8, n, 3, 5000) for n in range(6)] == [8, 8, 8, 4, 2, 1]
    assert decayed(8, 50, 3, 10_000) == 8
    assert decayed(8, 50, 0, 5000) == 8
    comment = evaluate(event(ActivityType.COMMENT), RULES, EventFacts(repetitions_in_window=3))
    assert comment.points_awarded == 2 and kinds(comment) == [RuleKind.BASE, RuleKind.DECAY]


def test_streak_bonus_grows_per_day_and_is_capped() -> None:
    rule = RULES.streak  # from day 2: +5% per day, at most +50%
    assert [streak_bonus_bps(d, rule) for d in (0, 1, 2, 3, 11, 30)] == [0, 0, 500, 1000, 5000, 5000]
    milestone = event(ActivityType.GAME_MILESTONE, game_id="g", milestone_id="m")
    decision = evaluate(milestone, RULES, EventFacts(streak_days=3))
    assert decision.points_awarded == 55
    assert decision.breakdown[-1].rule == RuleKind.STREAK_BONUS


def test_streak_counts_consecutive_days() -> None:
    d = date(2026, 3, 1)
    s = Streak().on_activity(d)
    assert s == Streak(d, 1)
    assert s.on_activity(d) == s
    s2 = s.on_activity(d + timedelta(days=1))
    assert s2.days == 2 and s2.length_on(d + timedelta(days=1)) == 2
    assert s2.on_activity(d) == s2 and s2.length_on(d) == 0  # a late event does not rewrite history
    assert s2.on_activity(d + timedelta(days=3)) == Streak(d + timedelta(days=3), 1)


def test_daily_type_cap_then_total_cap_trim_the_award() -> None:
    capped = evaluate(event(ActivityType.WATCH_TIME, watch_seconds=600), RULES, EventFacts(earned_today_type=115))
    assert capped.points_awarded == 5 and kinds(capped)[-1] == RuleKind.DAILY_TYPE_CAP
    full = evaluate(event(), RULES, EventFacts(earned_today_type=50))
    assert full.status == EventStatus.CAPPED and full.points_awarded == 0
    total = evaluate(event(ActivityType.WATCH_TIME, watch_seconds=600), RULES, EventFacts(earned_today_total=997))
    assert total.points_awarded == 3 and kinds(total)[-1] == RuleKind.DAILY_TOTAL_CAP


def test_challenge_multiplier_is_bounded_by_the_sponsor_budget() -> None:
    terms = [ChallengeTerms("c1", 15000, 3), ChallengeTerms("c2", 20000, None)]
    decision = evaluate(event(ActivityType.SHARE), RULES, EventFacts(challenges=terms))
    # base 10; c1 wants +5 but only 3 left; c2 unlimited +10
    assert decision.points_awarded == 23
    assert decision.sponsored == (("c1", 3),)
    assert kinds(decision) == [
        RuleKind.BASE, RuleKind.CHALLENGE_MULTIPLIER, RuleKind.SPONSOR_BUDGET, RuleKind.CHALLENGE_MULTIPLIER
    ]
    assert sum(step.points for step in decision.breakdown) == decision.points_awarded


def test_velocity_and_shared_device_hold_the_award() -> None:
    fast = evaluate(event(), RULES, EventFacts(events_last_minute=61))
    assert fast.status == EventStatus.HELD_FOR_REVIEW and fast.hold_reason == HoldReason.VELOCITY_LIMIT
    assert fast.points == 2 and fast.points_awarded == 0
    assert sum(step.points for step in fast.breakdown) == 0
    shared = evaluate(event(), RULES, EventFacts(device_accounts_today=6))
    assert shared.hold_reason == HoldReason.SHARED_DEVICE and kinds(shared)[-1] == RuleKind.DEVICE_HOLD
    roaming = evaluate(event(), RULES, EventFacts(account_devices_today=5))
    assert roaming.hold_reason == HoldReason.ACCOUNT_SHARING and kinds(roaming)[-1] == RuleKind.ACCOUNT_SHARING_HOLD
    assert evaluate(event(), RULES, EventFacts(account_devices_today=4)).status == EventStatus.AWARDED
    nothing = evaluate(event(), RULES, EventFacts(events_last_minute=61, target_already_paid=True))
    assert nothing.status == EventStatus.CAPPED  # nothing to hold


def test_the_receive_time_bucket_drains_the_limit_per_minute() -> None:
    bucket = ReceiveRate(5.0, NOW)
    assert bucket.drained(NOW, 60) == 5.0
    assert bucket.drained(NOW + timedelta(seconds=2), 60) == 3.0  # one event per second drains
    assert bucket.drained(NOW + timedelta(minutes=1), 60) == 0.0
    assert bucket.drained(NOW - timedelta(seconds=5), 60) == 5.0  # a clock step back drains nothing
    assert ReceiveRate().drained(NOW, 60) == 0.0 and bucket.drained(NOW, 0) == 0.0  # unlimited: not counted


def test_a_backdated_burst_is_counted_by_receive_time() -> None:
    """Events spread over the last 20 hours by their occurred_at, all received now: the fourth is
    over a limit of 3 per minute, though no minute of occurred_at holds more than one."""
    rules = replace(RULES, abuse=replace(RULES.abuse, velocity_max_events_per_minute=3))
    known = KnownFacts({}, {"u1": ReceiveRate(1.5, NOW - timedelta(seconds=10))}, {}, set(), set(), [], {}, {}, {})
    facts = BatchFacts(known, NOW, 3)  # the stored bucket drained to 1.0 by now
    seen = []
    for i in range(4):
        e = event(target_id=f"v{i}", occurred_at=NOW - timedelta(hours=5 * i))
        f = facts.facts_for(e, rules, e.occurred_at.date(), 0)
        decision = evaluate(e, rules, f)
        facts.apply(e, decision, e.occurred_at.date(), Streak())
        seen.append((f.events_last_minute, decision.status))
    assert seen == [
        (2, EventStatus.AWARDED), (3, EventStatus.AWARDED), (4, EventStatus.HELD_FOR_REVIEW),
        (5, EventStatus.HELD_FOR_REVIEW),
    ]
    [(_, bucket)] = list(facts.final_writes().user_states.values())
    assert bucket == ReceiveRate(5.0, NOW)  # held events count: a flood keeps the bucket full


def test_challenge_progress_needs_participation() -> None:
    progress = event(ActivityType.CHALLENGE_PROGRESS, challenge_id="c1")
    assert evaluate(progress, RULES, EventFacts(is_challenge_participant=False)).status == EventStatus.REJECTED
    assert evaluate(progress, RULES, EventFacts()).points_awarded == 10


def test_type_without_rule_earns_nothing() -> None:
    rules = Rules(version=1, time_zone="UTC", activity_rules={})
    assert evaluate(event(), rules, EventFacts()).status == EventStatus.CAPPED


def test_timing_window() -> None:
    abuse = AbuseRule(max_future_skew_seconds=10, max_lateness_seconds=60)
    assert timing_problem(NOW + timedelta(seconds=10), NOW, abuse) is None
    assert timing_problem(NOW + timedelta(seconds=11), NOW, abuse) == "EVENT_IN_FUTURE"
    assert timing_problem(NOW - timedelta(seconds=60), NOW, abuse) is None
    assert timing_problem(NOW - timedelta(seconds=61), NOW, abuse) == "EVENT_TOO_OLD"


def test_local_day_follows_the_time_zone() -> None:
    late_evening = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert RULES.local_day(late_evening) == date(2026, 3, 1)
    assert replace(RULES, time_zone="Asia/Tokyo").local_day(late_evening) == date(2026, 3, 2)


def test_early_join_bonus_inside_window_limited_by_budget() -> None:
    start = NOW
    assert early_join_bonus(start, 3600, 100, None, start + timedelta(minutes=59))[:2] == (True, 100)
    assert early_join_bonus(start, 3600, 100, None, start + timedelta(hours=1))[:2] == (False, 0)
    early, granted, steps = early_join_bonus(start, 3600, 100, 40, start)
    assert (early, granted) == (True, 40)
    assert [s.rule for s in steps] == [RuleKind.EARLY_JOIN_BONUS, RuleKind.SPONSOR_BUDGET]


def test_challenge_coverage() -> None:
    spec = ChallengeSpec("c", NOW, NOW + timedelta(days=1), regions=("US",), activity_types=(ActivityType.LIKE,))
    challenge = Challenge("c1", validate_challenge(spec), 0, NOW)
    joined = NOW
    assert challenge.covers(event(), joined)
    assert not challenge.covers(event(region="FR"), joined)
    assert not challenge.covers(event(ActivityType.COMMENT), joined)
    assert not challenge.covers(event(occurred_at=NOW + timedelta(days=1)), joined)
    assert not challenge.covers(event(), NOW + timedelta(seconds=1))  # happened before the join
    assert matching([(challenge, joined)], event()) == [challenge]
    with pytest.raises(RuleError):
        validate_challenge(replace(spec, end_time=NOW))
    with pytest.raises(RuleError):
        validate_challenge(replace(spec, multiplier_bps=5000))


def test_one_credit_per_user_and_day() -> None:
    def credit(n: int, user: str, reason: str = "like") -> PendingCredit:
        return PendingCredit(f"earning-ev-{n}", user, n, reason, f"e{n}")

    monday, tuesday = date(2026, 1, 5), date(2026, 1, 6)
    paid_by = one_credit_per_user_day([
        (credit(1, "a"), monday), (credit(2, "b"), monday), (credit(3, "a", "comment"), monday),
        (credit(4, "a"), tuesday),
    ])
    group = paid_by["earning-ev-1"]
    assert paid_by["earning-ev-3"] == group and group.request_id.startswith("earning-evs-")
    assert (group.user_id, group.amount, group.reason, group.reference) == ("a", 4, MIXED_REASON, "e1")
    assert paid_by["earning-ev-2"] == credit(2, "b") and paid_by["earning-ev-4"] == credit(4, "a")
    again = one_credit_per_user_day([(credit(1, "a"), monday), (credit(3, "a", "comment"), monday)])
    assert again["earning-ev-1"].request_id == group.request_id  # the same members: the same wallet key
