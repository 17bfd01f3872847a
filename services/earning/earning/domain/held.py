"""Earnings held for review by the anti-abuse rules, and their review states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from earning.domain.model import ActivityType

PENDING, APPROVED, REJECTED = 1, 2, 3


@dataclass(frozen=True)
class HeldEarning:
    held_earning_id: str
    event_id: str
    user_id: str
    type: ActivityType
    day: date
    points: int
    sponsored: tuple[tuple[str, int], ...]
    reason: str
    state: int
    create_time: datetime
    resolve_time: datetime | None
    resolved_by: str
    note: str
    credit_request_id: str
