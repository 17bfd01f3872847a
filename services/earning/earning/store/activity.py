"""Event evaluation state: the per-user lock, the facts an evaluation needs, and its writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.challenge import Challenge, ChallengeSpec
from earning.domain.evaluation import Streak
from earning.domain.model import ActivityEvent, ActivityType, EventStatus, RuleApplication, RuleKind
from earning.tables import (
    challenges,
    daily_counters,
    device_accounts,
    events,
    paid_milestones,
    paid_targets,
    participations,
    user_state,
)

async def lock_users(conn: AsyncConnection, user_ids: Sequence[str]) -> dict[str, Streak]:
    """Create and lock the users' rows in id order (no deadlocks between batches); their streaks."""
    ordered = sorted(set(user_ids))
    await conn.execute(insert(user_state).values([{"user_id": u} for u in ordered]).on_conflict_do_nothing())
    rows = await conn.execute(
        select(user_state).where(user_state.c.user_id.in_(ordered)).order_by(user_state.c.user_id).with_for_update()
    )
    return {r.user_id: Streak(r.streak_last_day, r.streak_days) for r in rows}

async def get_streak(conn: AsyncConnection, user_id: str) -> Streak:
    row = (await conn.execute(select(user_state).where(user_state.c.user_id == user_id))).first()
    return Streak(row.streak_last_day, row.streak_days) if row is not None else Streak()


async def save_streak(conn: AsyncConnection, user_id: str, streak: Streak) -> None:
    await conn.execute(
        user_state.update()
        .where(user_state.c.user_id == user_id)
        .values(streak_last_day=streak.last_day, streak_days=streak.days)
    )

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

def _breakdown_json(steps: Sequence[RuleApplication]) -> list[list[Any]]:
    return [[s.rule.value, s.points, s.detail, s.challenge_id] for s in steps]

def _breakdown_from(data: Any) -> tuple[RuleApplication, ...]:
    return tuple(RuleApplication(RuleKind(k), int(p), str(d), str(c)) for k, p, d, c in data)

async def find_event(conn: AsyncConnection, event_id: str) -> StoredEvent | None:
    row = (await conn.execute(select(events).where(events.c.event_id == event_id))).first()
    if row is None:
        return None
    return StoredEvent(
        row.event_id, row.fingerprint, row.user_id, EventStatus(row.status), row.points,
        _breakdown_from(row.breakdown), row.rejection_reason, row.held_earning_id, row.credit_request_id,
    )

async def insert_event(
    conn: AsyncConnection, event: ActivityEvent, stored: StoredEvent, day: date, received_at: datetime
) -> None:
    await conn.execute(
        events.insert().values(
            event_id=event.event_id, fingerprint=stored.fingerprint, user_id=event.user_id, type=event.type.value,
            occurred_at=event.occurred_at, received_at=received_at, day=day, status=stored.status.value,
            points=stored.points, breakdown=json.loads(json.dumps(_breakdown_json(stored.breakdown))),
            rejection_reason=stored.rejection_reason, held_earning_id=stored.held_earning_id,
            credit_request_id=stored.credit_request_id,
        )
    )

_ACCEPTED = (EventStatus.AWARDED.value, EventStatus.CAPPED.value, EventStatus.HELD_FOR_REVIEW.value)

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

async def is_target_paid(conn: AsyncConnection, user_id: str, activity: ActivityType, target_id: str) -> bool:
    stmt = select(paid_targets.c.user_id).where(
        and_(paid_targets.c.user_id == user_id, paid_targets.c.type == activity.value, paid_targets.c.target_id == target_id)
    )
    return (await conn.execute(stmt)).first() is not None

async def mark_target_paid(conn: AsyncConnection, user_id: str, activity: ActivityType, target_id: str) -> None:
    await conn.execute(
        insert(paid_targets).values(user_id=user_id, type=activity.value, target_id=target_id).on_conflict_do_nothing()
    )

async def is_milestone_paid(conn: AsyncConnection, user_id: str, game_id: str, milestone_id: str) -> bool:
    stmt = select(paid_milestones.c.user_id).where(
        and_(
            paid_milestones.c.user_id == user_id,
            paid_milestones.c.game_id == game_id,
            paid_milestones.c.milestone_id == milestone_id,
        )
    )
    return (await conn.execute(stmt)).first() is not None

async def mark_milestone_paid(conn: AsyncConnection, user_id: str, game_id: str, milestone_id: str) -> None:
    await conn.execute(
        insert(paid_milestones).values(user_id=user_id, game_id=game_id, milestone_id=milestone_id).on_conflict_do_nothing()
    )

async def count_events(
    conn: AsyncConnection, user_id: str, since: datetime, until: datetime, activity: ActivityType | None = None
) -> int:
    """Accepted events of a user that occurred in [since, until]."""
    conditions = [
        events.c.user_id == user_id,
        events.c.occurred_at >= since,
        events.c.occurred_at <= until,
        events.c.status.in_(_ACCEPTED),
    ]
    if activity is not None:
        conditions.append(events.c.type == activity.value)
    return int((await conn.execute(select(func.count()).select_from(events).where(and_(*conditions)))).scalar_one())

async def device_accounts_today(conn: AsyncConnection, device_id: str, day: date, user_id: str) -> int:
    """Record the user on the device for the day; distinct accounts seen on it that day."""
    await conn.execute(
        insert(device_accounts).values(device_id=device_id, day=day, user_id=user_id).on_conflict_do_nothing()
    )
    stmt = select(func.count()).select_from(device_accounts).where(
        and_(device_accounts.c.device_id == device_id, device_accounts.c.day == day)
    )
    return int((await conn.execute(stmt)).scalar_one())

def challenge_from_row(row: Any) -> Challenge:
    spec = ChallengeSpec(
        name=row.name, start_time=row.start_time, end_time=row.end_time, regions=tuple(row.regions),
        activity_types=tuple(ActivityType(t) for t in row.activity_types), multiplier_bps=row.multiplier_bps,
        early_join_window_seconds=row.early_join_window_seconds, early_join_bonus_points=row.early_join_bonus_points,
        sponsor=row.sponsor, sponsor_budget_points=row.sponsor_budget_points,
    )
    return Challenge(row.challenge_id, spec, row.budget_spent_points, row.create_time)

async def joined_challenges_locked(
    conn: AsyncConnection, user_id: str, at: datetime
) -> list[tuple[Challenge, datetime]]:
    """The user's challenges active at `at`, rows locked in id order (budgets are charged under the lock)."""
    stmt = (
        select(challenges, participations.c.join_time)
        .join(participations, participations.c.challenge_id == challenges.c.challenge_id)
        .where(and_(participations.c.user_id == user_id, challenges.c.start_time <= at, challenges.c.end_time > at))
        .order_by(challenges.c.challenge_id)
        .with_for_update(of=challenges)
    )
    return [(challenge_from_row(r), r.join_time) for r in await conn.execute(stmt)]

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

def minute_window(at: datetime) -> tuple[datetime, datetime]:
    return at - timedelta(seconds=59.999), at
