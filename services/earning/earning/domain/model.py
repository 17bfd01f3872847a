"""Earning vocabulary: activity types, rules, results. Pure Python: no grpc, no sqlalchemy."""

from __future__ import annotations

import enum
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

MAX_POINTS_PER_EVENT = 1_000_000
MAX_CAP = 10**12
MAX_BPS = 100_000  # 10x: no multiplier or bonus beyond that
MAX_WATCH_SECONDS = 24 * 3600
MAX_SECONDS_SETTING = 365 * 24 * 3600


class RuleError(ValueError):
    """A rule set or challenge that cannot be accepted; `field` names the offending input."""

    def __init__(self, field_name: str, description: str) -> None:
        super().__init__(f"{field_name}: {description}")
        self.field = field_name
        self.description = description


class ActivityType(enum.IntEnum):
    """Same numbers as points.earning.v1.ActivityType."""

    WATCH_TIME = 1
    LIKE = 2
    COMMENT = 3
    SHARE = 4
    LIVE_JOIN = 5
    GAME_MILESTONE = 6
    CHALLENGE_PROGRESS = 7


class EventStatus(enum.IntEnum):
    AWARDED = 1
    CAPPED = 2
    DUPLICATE = 3
    HELD_FOR_REVIEW = 4
    REJECTED = 5


class RuleKind(enum.IntEnum):
    BASE = 1
    DAILY_TYPE_CAP = 2
    DAILY_TOTAL_CAP = 3
    DUPLICATE_TARGET = 4
    DECAY = 5
    STREAK_BONUS = 6
    CHALLENGE_MULTIPLIER = 7
    EARLY_JOIN_BONUS = 8
    SPONSOR_BUDGET = 9
    MILESTONE_ONCE = 10
    VELOCITY_HOLD = 11
    DEVICE_HOLD = 12
    ACCOUNT_SHARING_HOLD = 13


class HoldReason(enum.StrEnum):
    VELOCITY_LIMIT = "VELOCITY_LIMIT"
    SHARED_DEVICE = "SHARED_DEVICE"
    ACCOUNT_SHARING = "ACCOUNT_SHARING"


@dataclass(frozen=True)
class ActivityEvent:
    event_id: str
    user_id: str
    type: ActivityType
    occurred_at: datetime
    region: str
    device_id: str = ""
    watch_seconds: int = 0
    target_id: str = ""
    game_id: str = ""
    milestone_id: str = ""
    challenge_id: str = ""


@dataclass(frozen=True)
class RuleApplication:
    rule: RuleKind
    points: int
    detail: str
    challenge_id: str = ""


@dataclass(frozen=True)
class ActivityRule:
    type: ActivityType
    points_per_action: int = 0
    points_per_minute: int = 0
    daily_cap: int = 0
    decay_after: int = 0
    decay_window_seconds: int = 3600
    decay_bps: int = 5000
    once_per_target: bool = False


@dataclass(frozen=True)
class StreakRule:
    min_days: int = 0
    bonus_bps_per_day: int = 0
    max_bonus_bps: int = 0


@dataclass(frozen=True)
class AbuseRule:
    max_future_skew_seconds: int = 300
    max_lateness_seconds: int = 86_400
    velocity_max_events_per_minute: int = 0
    max_accounts_per_device_per_day: int = 0
    max_devices_per_account_per_day: int = 0


@dataclass(frozen=True)
class Rules:
    """One version of the rule set; it governs events that occur at or after `effective_from`."""

    version: int
    time_zone: str
    activity_rules: Mapping[ActivityType, ActivityRule]
    daily_total_cap: int = 0
    streak: StreakRule = field(default_factory=StreakRule)
    abuse: AbuseRule = field(default_factory=AbuseRule)
    effective_from: datetime | None = None

    def rule_for(self, activity: ActivityType) -> ActivityRule | None:
        return self.activity_rules.get(activity)

    def local_day(self, moment: datetime) -> date:
        """The user's day (caps, streaks, summaries) in the rules' time zone."""
        return moment.astimezone(_zone(self.time_zone)).date()


@cache
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _bounded(field_name: str, value: int, maximum: int, minimum: int = 0) -> int:
    if not minimum <= value <= maximum:
        raise RuleError(field_name, f"must be between {minimum} and {maximum}")
    return value


def validate_rules(rules: Rules) -> Rules:
    """Raise RuleError for a rule set the engine cannot apply safely."""
    if rules.time_zone not in _known_zones():
        raise RuleError("rules.time_zone", "must be an IANA time zone such as Europe/Paris")
    for index, (activity, rule) in enumerate(rules.activity_rules.items()):
        where = f"rules.activity_rules[{index}]"
        if activity != rule.type:
            raise RuleError(f"{where}.type", "does not match its key")
        _bounded(f"{where}.points_per_action", rule.points_per_action, MAX_POINTS_PER_EVENT)
        _bounded(f"{where}.points_per_minute", rule.points_per_minute, MAX_POINTS_PER_EVENT)
        _bounded(f"{where}.daily_cap", rule.daily_cap, MAX_CAP)
        _bounded(f"{where}.decay_after", rule.decay_after, 10_000)
        _bounded(f"{where}.decay_window_seconds", rule.decay_window_seconds, MAX_SECONDS_SETTING)
        _bounded(f"{where}.decay_bps", rule.decay_bps, 10_000)
        if rule.decay_after and not rule.decay_window_seconds:
            raise RuleError(f"{where}.decay_window_seconds", "must be positive when decay_after is set")
    _bounded("rules.daily_total_cap", rules.daily_total_cap, MAX_CAP)
    _bounded("rules.streak.min_days", rules.streak.min_days, 3650)
    _bounded("rules.streak.bonus_bps_per_day", rules.streak.bonus_bps_per_day, MAX_BPS)
    _bounded("rules.streak.max_bonus_bps", rules.streak.max_bonus_bps, MAX_BPS)
    _bounded("rules.abuse.max_future_skew_seconds", rules.abuse.max_future_skew_seconds, MAX_SECONDS_SETTING)
    _bounded("rules.abuse.max_lateness_seconds", rules.abuse.max_lateness_seconds, MAX_SECONDS_SETTING, 1)
    _bounded("rules.abuse.velocity_max_events_per_minute", rules.abuse.velocity_max_events_per_minute, 1_000_000)
    _bounded("rules.abuse.max_accounts_per_device_per_day", rules.abuse.max_accounts_per_device_per_day, 1_000_000)
    _bounded("rules.abuse.max_devices_per_account_per_day", rules.abuse.max_devices_per_account_per_day, 1_000_000)
    return rules


# --- the rule set as JSON (the seed file and the stored versions) ----------------------------


def rules_to_json(rules: Rules) -> dict[str, Any]:
    return {
        "time_zone": rules.time_zone,
        "daily_total_cap": rules.daily_total_cap,
        "activities": {
            activity.name: {
                "points_per_action": rule.points_per_action,
                "points_per_minute": rule.points_per_minute,
                "daily_cap": rule.daily_cap,
                "decay_after": rule.decay_after,
                "decay_window_seconds": rule.decay_window_seconds,
                "decay_bps": rule.decay_bps,
                "once_per_target": rule.once_per_target,
            }
            for activity, rule in sorted(rules.activity_rules.items())
        },
        "streak": vars(rules.streak).copy(),
        "abuse": vars(rules.abuse).copy(),
    }


def rules_from_json(data: Mapping[str, Any], version: int = 0, effective_from: datetime | None = None) -> Rules:
    """Parse the JSON form; unknown activity names or keys are errors (a typo must not pass)."""
    try:
        activities = {}
        for name, body in dict(data.get("activities", {})).items():
            activity = ActivityType[name]
            activities[activity] = ActivityRule(type=activity, **body)
        rules = Rules(
            version=version,
            time_zone=str(data.get("time_zone", "UTC")),
            activity_rules=activities,
            daily_total_cap=int(data.get("daily_total_cap", 0)),
            streak=StreakRule(**data.get("streak", {})),
            abuse=AbuseRule(**data.get("abuse", {})),
            effective_from=effective_from,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RuleError("rules", f"malformed rule set: {exc}") from None
    return validate_rules(rules)
