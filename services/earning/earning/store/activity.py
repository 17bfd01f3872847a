"""Per-user state read and written by the admin use cases (counters, streaks, budgets), stored events' form.

The recording hot path uses the set-based statements of `earning.store.batch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.challenge import Challenge, ChallengeSpec
from earning.domain.evaluation import Streak
from earning.domain.model import ActivityType, EventStatus, RuleApplication, RuleKind
from earning.tables import challenges, daily_counters, user_state


async def get_streak(conn: AsyncConnection, user_id: str) -> Streak:
    row = (await conn.execute(select(user_state).where(user_state.c.user_id == user_id))).first()
    return Streak(row.streak_last_day, row.streak_days) if row is not None else Streak()


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    fingerprint: str
    user_id: str
    status: EventStatus
    points: int
    breakdown: tuple[RuleApplication, ...]
    rejection_reason: str
    held_earning_id: str
    credit_request_id: str


def breakdown_from(data: Any) -> tuple[RuleApplication, ...]:
    return tuple(RuleApplication(RuleKind(k), int(p), str(d), str(c)) for k, p, d, c in data)


async def counters(conn: AsyncConnection, user_id: str, day: date) -> dict[int, tuple[int, int, int]]:
    """type -> (capped, credited, held) points of a user's day."""
    rows = await conn.execute(
        select(daily_counters).where(and_(daily_counters.c.user_id == user_id, daily_counters.c.day == day))
    )
    return {r.type: (r.capped_points, r.credited_points, r.held_points) for r in rows}


async def add_to_counters(
    conn: AsyncConnection, user_id: str, day: date, activity: int, *, capped: int = 0, credited: int = 0, held: int = 0
) -> None:
    stmt = insert(daily_counters).values(
        user_id=user_id, day=day, type=activity, capped_points=max(capped, 0), credited_points=max(credited, 0),
        held_points=max(held, 0),
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[daily_counters.c.user_id, daily_counters.c.day, daily_counters.c.type],
            set_={
                "capped_points": daily_counters.c.capped_points + capped,
                "credited_points": daily_counters.c.credited_points + credited,
                "held_points": daily_counters.c.held_points + held,
            },
        )
    )


def challenge_from_row(row: Any) -> Challenge:
    spec = ChallengeSpec(
        name=row.name, start_time=row.start_time, end_time=row.end_time, regions=tuple(row.regions),
        activity_types=tuple(ActivityType(t) for t in row.activity_types), multiplier_bps=row.multiplier_bps,
        early_join_window_seconds=row.early_join_window_seconds, early_join_bonus_points=row.early_join_bonus_points,
        sponsor=row.sponsor, sponsor_budget_points=row.sponsor_budget_points,
    )
    return Challenge(row.challenge_id, spec, row.budget_spent_points, row.create_time)


async def charge_budget(conn: AsyncConnection, challenge_id: str, points: int) -> None:
    """Spend sponsor budget; the condition (and a CHECK) make overspending impossible."""
    result = await conn.execute(
        challenges.update()
        .where(
            and_(
                challenges.c.challenge_id == challenge_id,
                challenges.c.budget_spent_points + points <= challenges.c.sponsor_budget_points,
            )
        )
        .values(budget_spent_points=challenges.c.budget_spent_points + points)
    )
    if result.rowcount != 1:
        raise RuntimeError(f"sponsor budget of {challenge_id} would be overspent")


async def refund_budget(conn: AsyncConnection, challenge_id: str, points: int) -> None:
    await conn.execute(
        challenges.update()
        .where(challenges.c.challenge_id == challenge_id)
        .values(budget_spent_points=func.greatest(0, challenges.c.budget_spent_points - points))
    )

