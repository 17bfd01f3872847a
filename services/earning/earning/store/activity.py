"""Per-user state read and written by the admin use cases (counters, streaks, budgets), stored events' form.

The recording hot path uses the set-based statements of `earning.store.batch`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.challenge import Challenge, ChallengeSpec
from earning.domain.evaluation import Streak
from earning.domain.model import ActivityType, RuleApplication, RuleKind
from earning.store.events import EarningEvents, Written, budget_exhausted
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


# Charges sponsor budgets, never beyond them; a charge that brings a budget from below to exactly its
# size counts an exhaustion and returns it (the challenge row is locked by the charge, so one charge
# crosses: its transaction writes the one challenge_budget_exhausted event). RETURNING sees the new row.
CHARGE_SQL = (
    "UPDATE challenges c SET budget_spent_points = c.budget_spent_points + q.x,"
    " budget_exhaustions = c.budget_exhaustions"
    " + CASE WHEN q.x > 0 AND c.budget_spent_points + q.x = c.sponsor_budget_points THEN 1 ELSE 0 END"
    " FROM unnest(CAST(:ch_ids AS text[]), CAST(:ch_points AS bigint[])) AS q(id, x)"
    " WHERE c.challenge_id = q.id AND c.budget_spent_points + q.x <= c.sponsor_budget_points"
    " RETURNING c.challenge_id, c.sponsor_budget_points, c.budget_exhaustions,"
    " q.x > 0 AND c.budget_spent_points = c.sponsor_budget_points AS exhausted"
)
_CHARGE = text(CHARGE_SQL)


class ActivityRepository:
    """Users' streaks, daily counters and sponsor budgets, on the caller's connection."""

    def __init__(self, conn: AsyncConnection, events: EarningEvents, written: Written) -> None:
        self._conn = conn
        self._events = events
        self._written = written

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

    async def charge_budget(self, challenge_id: str, points: int, now: datetime) -> None:
        """Spend sponsor budget; the condition (and a CHECK) make overspending impossible. The charge
        that spends the last point appends the challenge_budget_exhausted event."""
        rows = (await self._conn.execute(_CHARGE, {"ch_ids": [challenge_id], "ch_points": [points]})).all()
        if len(rows) != 1:
            raise RuntimeError(f"sponsor budget of {challenge_id} would be overspent")
        [row] = rows
        if row.exhausted:
            await self._events.append(
                self._conn, [budget_exhausted(challenge_id, row.sponsor_budget_points, row.budget_exhaustions, now)]
            )
            self._written.events = True

    async def refund_budget(self, challenge_id: str, points: int) -> None:
        await self._conn.execute(
            challenges.update()
            .where(challenges.c.challenge_id == challenge_id)
            .values(budget_spent_points=func.greatest(0, challenges.c.budget_spent_points - points))
        )
