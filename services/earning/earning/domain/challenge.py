"""Challenges: time-boxed multipliers, early-join bonuses, sponsor budgets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from earning.domain.model import MAX_BPS, MAX_CAP, MAX_POINTS_PER_EVENT, ActivityEvent, ActivityType, RuleError

BPS = 10_000


@dataclass(frozen=True)
class ChallengeSpec:
    name: str
    start_time: datetime
    end_time: datetime
    regions: tuple[str, ...] = ()
    activity_types: tuple[ActivityType, ...] = ()
    multiplier_bps: int = BPS
    early_join_window_seconds: int = 0
    early_join_bonus_points: int = 0
    sponsor: str = ""
    sponsor_budget_points: int = 0  # 0 = unlimited


@dataclass(frozen=True)
class Challenge:
    challenge_id: str
    spec: ChallengeSpec
    budget_spent_points: int
    create_time: datetime

    @property
    def budget_remaining(self) -> int | None:
        if not self.spec.sponsor_budget_points:
            return None
        return self.spec.sponsor_budget_points - self.budget_spent_points

    def is_active(self, at: datetime) -> bool:
        return self.spec.start_time <= at < self.spec.end_time

    def covers(self, event: ActivityEvent, joined_at: datetime) -> bool:
        """True when a participant's event counts for this challenge."""
        spec = self.spec
        if not self.is_active(event.occurred_at) or event.occurred_at < joined_at:
            return False
        if spec.regions and event.region not in spec.regions:
            return False
        if event.type == ActivityType.CHALLENGE_PROGRESS:
            return event.challenge_id == self.challenge_id
        return not spec.activity_types or event.type in spec.activity_types


def validate_challenge(spec: ChallengeSpec) -> ChallengeSpec:
    if not spec.name.strip():
        raise RuleError("spec.name", "is required")
    if spec.end_time <= spec.start_time:
        raise RuleError("spec.end_time", "must be after start_time")
    if not BPS <= spec.multiplier_bps <= MAX_BPS:
        raise RuleError("spec.multiplier_bps", f"must be between {BPS} (1x) and {MAX_BPS}")
    if not 0 <= spec.early_join_window_seconds <= 365 * 86_400:
        raise RuleError("spec.early_join_window_seconds", "must be between 0 and one year")
    if not 0 <= spec.early_join_bonus_points <= MAX_POINTS_PER_EVENT:
        raise RuleError("spec.early_join_bonus_points", f"must be between 0 and {MAX_POINTS_PER_EVENT}")
    if not 0 <= spec.sponsor_budget_points <= MAX_CAP:
        raise RuleError("spec.sponsor_budget_points", f"must be between 0 and {MAX_CAP}")
    if spec.sponsor_budget_points and not spec.sponsor:
        raise RuleError("spec.sponsor", "is required with a sponsor budget")
    if len(set(spec.regions)) != len(spec.regions) or len(set(spec.activity_types)) != len(spec.activity_types):
        raise RuleError("spec.regions", "regions and activity types must not repeat")
    return spec


def matching(challenges: Sequence[tuple[Challenge, datetime]], event: ActivityEvent) -> list[Challenge]:
    """Joined challenges (with their join times) the event counts for, in id order."""
    return sorted((c for c, joined in challenges if c.covers(event, joined)), key=lambda c: c.challenge_id)


@dataclass(frozen=True)
class Participation:
    challenge_id: str
    user_id: str
    join_time: datetime
    early: bool
    bonus_points: int
