"""Per-user state read and written by the admin use cases (counters, streaks, budgets), stored events' form.

The recording hot path uses the set-based statements of `earning.store.batch`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.challenge import Challenge, ChallengeSpec
from earning.domain.evaluation import Streak
from earning.domain.model import ActivityType, RuleApplication, RuleKind
from earning.store.tables import challenges, daily_counters, user_state


def breakdown_from(data: Any) -> tuple[RuleApplication, ...]:
    return tuple(RuleApplication(RuleKind(k), int(p), str(d), str(c)) for k, p, d, c in data)


def challenge_from_row(row: Any) -> Challenge:
    spec = ChallengeSpec(
        name=row.name, start_time=row.start_time, end_time=row.end_time, regions=tuple(row.regions),
        activity_types=tuple(ActivityType(t) for t in row.activity_types), multiplier_bps=row.multiplier_bps,
        early_join_window_seconds=row.early_join_window_seconds, early_join_bonus_points=row.early_join_bonus_points,
        sponsor=row.sponsor, sponsor_budget_points=row.sponsor_budget_points,
    )
    return Challenge(row.challenge_id, spec, row.budget_spent_points, row.create_time)


class ActivityRepository:
    """Users' streaks, daily counters and sponsor budgets, on the caller's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_streak(self, user_id: str) -> Streak:
        row = (await self._conn.execute(select(user_state).where(user_state.c.user_id == user_id))).first()
        return Streak(row.streak_last_day, row.streak_days) if row is not None else Streak()

    async def counters(self, user_id: str, day: date) -> dict[int, tuple[int, int, int]]:
        """type -> (capped, credited, held) points of a user's day."""
        rows = await self._conn.execute(
            select(daily_counters).where(and_(daily_counters.c.user_id == user_id, daily_counters.c.day == day))
        )
        return {r.type: (r.capped_points, r.credited_points, r.held_points) for r in rows}

    async def add_to_counters(
        self, user_id: str, day: date, activity: int, *, capped: int = 0, credited: int = 0, held: int = 0
    ) -> None:
        stmt = insert(daily_counters).values(
            user_id=user_id, day=day, type=activity, capped_points=max(capped, 0), credited_points=max(credited, 0),
            held_points=max(held, 0),
        )
        await self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[daily_counters.c.user_id, daily_counters.c.day, daily_counters.c.type],
                set_={
                    "capped_points": daily_counters.c.capped_points + capped,
                    "credited_points": daily_counters.c.credited_points + credited,
                    "held_points": daily_counters.c.held_points + held,
                },
            )
        )

    async def charge_budget(self, challenge_id: str, points: int) -> None:
        """Spend sponsor budget; the condition (and a CHECK) make overspending impossible."""
        result = await self._conn.execute(
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

    async def refund_budget(self, challenge_id: str, points: int) -> None:
        await self._conn.execute(
            challenges.update()
            .where(challenges.c.challenge_id == challenge_id)
            .values(budget_spent_points=func.greatest(0, challenges.c.budget_spent_points - points))
        )
