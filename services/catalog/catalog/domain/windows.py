"""Time windows, regions and the per-user limit windows (UTC calendar)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from catalog.domain.items import LimitWindow


def is_in_window(start: datetime | None, end: datetime | None, now: datetime) -> bool:
    """Half-open [start, end): the start instant is in, the end instant is out."""
    return (start is None or start <= now) and (end is None or now < end)


def offered_in(regions: Sequence[str], region: str) -> bool:
    return not regions or region in regions


def limit_window_start(window: LimitWindow, now: datetime) -> datetime | None:
    """Start of the per-user window containing `now` (UTC calendar); None = lifetime."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == LimitWindow.DAY:
        return day
    if window == LimitWindow.WEEK:
        return day - timedelta(days=day.weekday())  # ISO week starts on Monday
    if window == LimitWindow.MONTH:
        return day.replace(day=1)
    return None
