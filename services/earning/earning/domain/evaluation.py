"""How one event turns into points: the order of the rules and their arithmetic (all floors).

Order: BASE -> DUPLICATE_TARGET / MILESTONE_ONCE -> DECAY -> STREAK_BONUS -> DAILY_TYPE_CAP ->
DAILY_TOTAL_CAP -> CHALLENGE_MULTIPLIER (-> SPONSOR_BUDGET) -> VELOCITY_HOLD / DEVICE_HOLD /
ACCOUNT_SHARING_HOLD.
The daily caps bound what the platform pays; a challenge's extra is funded by the challenge
(its sponsor budget bounds it) and is therefore not counted against the daily caps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from earning.domain.model import (
    AbuseRule,
    ActivityEvent,
    ActivityType,
    EventStatus,
    HoldReason,
    RuleApplication,
    RuleKind,
    Rules,
    StreakRule,
)

BPS = 10_000


def timing_problem(occurred_at: datetime, now: datetime, abuse: AbuseRule) -> str | None:
    """EVENT_IN_FUTURE / EVENT_TOO_OLD when the event's time is outside what we accept."""
    if occurred_at > now + timedelta(seconds=abuse.max_future_skew_seconds):
        return "EVENT_IN_FUTURE"
    if occurred_at < now - timedelta(seconds=abuse.max_lateness_seconds):
        return "EVENT_TOO_OLD"
    return None


@dataclass(frozen=True)
class Streak:
    """Consecutive active days ending on `last_day`."""

    last_day: date | None = None
    days: int = 0

    def on_activity(self, day: date) -> Streak:
        """The streak after activity on `day`; a late event for an earlier day changes nothing."""
        if self.last_day is None or day > self.last_day + timedelta(days=1):
            return Streak(day, 1)
        if day == self.last_day + timedelta(days=1):
            return Streak(day, self.days + 1)
        return self

    def length_on(self, day: date) -> int:
        """Streak length that counts for an event on `day` (0 for a day before the streak's end)."""
        return self.days if self.last_day == day else 0


@dataclass(frozen=True)
class ReceiveRate:
    """The user's recent events by the server's receive time: a leaky bucket that drains `limit`
    events per minute. `occurred_at` is the client's word and may lie anywhere in the lateness
    window, so a burst backdated across the day would pass a count by `occurred_at` alone."""

    level: float = 0.0
    at: datetime | None = None

    def drained(self, now: datetime, limit: int) -> float:
        """The level at `now`, before its events (without a limit nothing is counted)."""
        if self.at is None or limit <= 0:
            return 0.0
        return max(0.0, self.level - max(0.0, (now - self.at).total_seconds()) * limit / 60)


def streak_bonus_bps(streak_days: int, rule: StreakRule) -> int:
    if rule.min_days <= 0 or streak_days < rule.min_days:
        return 0
    return min(rule.max_bonus_bps, (streak_days - rule.min_days + 1) * rule.bonus_bps_per_day)


def decayed(points: int, repetitions_before: int, decay_after: int, decay_bps: int) -> int:
    """Repetitions past `decay_after` each pay floor(previous * decay_bps / 10000)."""
    if decay_after <= 0 or repetitions_before < decay_after or decay_bps >= BPS:
        return points
    for _ in range(repetitions_before - decay_after + 1):
        points = points * decay_bps // BPS
        if points == 0:
            break
    return points


@dataclass(frozen=True)
class ChallengeTerms:
    """A challenge the event counts for (joined, active, region and type match)."""

    challenge_id: str
    multiplier_bps: int
    budget_remaining: int | None  # None: no sponsor budget, unlimited


@dataclass(frozen=True)
class EventFacts:
    """What the store knows about the user when the event is evaluated."""

    earned_today_type: int = 0
    earned_today_total: int = 0
    target_already_paid: bool = False
    milestone_already_paid: bool = False
    repetitions_in_window: int = 0
    streak_days: int = 0
    events_last_minute: int = 1  # including this event: by occurred_at, or by receive time if more
    device_accounts_today: int = 0  # distinct accounts on the device today, this user included
    account_devices_today: int = 0  # distinct devices of the user today, this event's device included
    challenges: Sequence[ChallengeTerms] = ()
    is_challenge_participant: bool = True  # CHALLENGE_PROGRESS only


@dataclass(frozen=True)
class Decision:
    status: EventStatus
    points: int  # earned by the event: credited when AWARDED, held when HELD_FOR_REVIEW
    capped_points: int  # the part that counts against the daily caps
    breakdown: tuple[RuleApplication, ...]
    sponsored: tuple[tuple[str, int], ...] = ()  # challenge_id -> points charged to its budget
    hold_reason: HoldReason | None = None
    rejection_reason: str = ""

    @property
    def points_awarded(self) -> int:
        return self.points if self.status == EventStatus.AWARDED else 0


def base_points(event: ActivityEvent, rules: Rules) -> tuple[int, str]:
    rule = rules.rule_for(event.type)
    if rule is None:
        return 0, f"no rule for {event.type.name}"
    if event.type == ActivityType.WATCH_TIME:
        minutes = event.watch_seconds // 60
        return minutes * rule.points_per_minute, f"{minutes} full minutes x {rule.points_per_minute}"
    return rule.points_per_action, f"{event.type.name} pays {rule.points_per_action}"


def evaluate(event: ActivityEvent, rules: Rules, facts: EventFacts) -> Decision:
    """Decide what an accepted (well-formed, timely, first-seen) event earns."""
    if event.type == ActivityType.CHALLENGE_PROGRESS and not facts.is_challenge_participant:
        return Decision(EventStatus.REJECTED, 0, 0, (), rejection_reason="NOT_A_PARTICIPANT")
    rule = rules.rule_for(event.type)
    steps: list[RuleApplication] = []
    points, detail = base_points(event, rules)
    steps.append(RuleApplication(RuleKind.BASE, points, detail))

    if points and rule is not None and rule.once_per_target and facts.target_already_paid:
        steps.append(RuleApplication(RuleKind.DUPLICATE_TARGET, -points, f"target {event.target_id} already paid"))
        points = 0
    if points and event.type == ActivityType.GAME_MILESTONE and facts.milestone_already_paid:
        steps.append(RuleApplication(RuleKind.MILESTONE_ONCE, -points, f"milestone {event.milestone_id} already paid"))
        points = 0
    if points and rule is not None:
        after = decayed(points, facts.repetitions_in_window, rule.decay_after, rule.decay_bps)
        if after != points:
            steps.append(
                RuleApplication(
                    RuleKind.DECAY,
                    after - points,
                    f"repetition {facts.repetitions_in_window + 1} within {rule.decay_window_seconds}s",
                )
            )
            points = after
    bonus_bps = streak_bonus_bps(facts.streak_days, rules.streak)
    if points and bonus_bps:
        bonus = points * bonus_bps // BPS
        if bonus:
            detail = f"{facts.streak_days}-day streak +{bonus_bps}bps"
            steps.append(RuleApplication(RuleKind.STREAK_BONUS, bonus, detail))
            points += bonus
    if points and rule is not None and rule.daily_cap:
        room = max(0, rule.daily_cap - facts.earned_today_type)
        if points > room:
            steps.append(
                RuleApplication(RuleKind.DAILY_TYPE_CAP, room - points, f"daily {event.type.name} cap {rule.daily_cap}")
            )
            points = room
    if points and rules.daily_total_cap:
        room = max(0, rules.daily_total_cap - facts.earned_today_total)
        if points > room:
            steps.append(
                RuleApplication(RuleKind.DAILY_TOTAL_CAP, room - points, f"daily total cap {rules.daily_total_cap}")
            )
            points = room
    capped_points = points

    sponsored: list[tuple[str, int]] = []
    for terms in facts.challenges:
        extra = capped_points * max(0, terms.multiplier_bps - BPS) // BPS
        if not extra:
            continue
        steps.append(
            RuleApplication(
                RuleKind.CHALLENGE_MULTIPLIER, extra, f"x{terms.multiplier_bps / BPS:g} challenge", terms.challenge_id
            )
        )
        granted = extra if terms.budget_remaining is None else min(extra, max(0, terms.budget_remaining))
        if granted < extra:
            steps.append(
                RuleApplication(
                    RuleKind.SPONSOR_BUDGET, granted - extra, "sponsor budget exhausted", terms.challenge_id
                )
            )
        if terms.budget_remaining is not None and granted:
            sponsored.append((terms.challenge_id, granted))
        points += granted

    hold = _hold_reason(rules.abuse, facts)
    if hold is not None and points > 0:
        steps.append(RuleApplication(_HOLD_KINDS[hold], -points, f"held for review: {hold.value}"))
        return Decision(EventStatus.HELD_FOR_REVIEW, points, capped_points, tuple(steps), tuple(sponsored), hold)
    status = EventStatus.AWARDED if points > 0 else EventStatus.CAPPED
    return Decision(status, points, capped_points, tuple(steps), tuple(sponsored))


def _hold_reason(abuse: AbuseRule, facts: EventFacts) -> HoldReason | None:
    if abuse.velocity_max_events_per_minute and facts.events_last_minute > abuse.velocity_max_events_per_minute:
        return HoldReason.VELOCITY_LIMIT
    if abuse.max_accounts_per_device_per_day and facts.device_accounts_today > abuse.max_accounts_per_device_per_day:
        return HoldReason.SHARED_DEVICE
    if abuse.max_devices_per_account_per_day and facts.account_devices_today > abuse.max_devices_per_account_per_day:
        return HoldReason.ACCOUNT_SHARING
    return None


_HOLD_KINDS = {
    HoldReason.VELOCITY_LIMIT: RuleKind.VELOCITY_HOLD,
    HoldReason.SHARED_DEVICE: RuleKind.DEVICE_HOLD,
    HoldReason.ACCOUNT_SHARING: RuleKind.ACCOUNT_SHARING_HOLD,
}


def early_join_bonus(
    start_time: datetime,
    early_window_seconds: int,
    bonus_points: int,
    budget_remaining: int | None,
    joined_at: datetime,
) -> tuple[bool, int, tuple[RuleApplication, ...]]:
    """(is_early, points granted, breakdown) for a join at `joined_at`."""
    early = joined_at < start_time + timedelta(seconds=early_window_seconds)
    if not early or bonus_points <= 0:
        return early, 0, ()
    granted = bonus_points if budget_remaining is None else min(bonus_points, max(0, budget_remaining))
    steps = [RuleApplication(RuleKind.EARLY_JOIN_BONUS, bonus_points, "joined in the early window")]
    if granted < bonus_points:
        steps.append(RuleApplication(RuleKind.SPONSOR_BUDGET, granted - bonus_points, "sponsor budget exhausted"))
    return early, granted, tuple(steps)
