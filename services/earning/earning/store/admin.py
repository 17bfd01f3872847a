"""Rule versions, challenges, participations, held earnings and stored idempotent responses."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, any_, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.challenge import Challenge, Participation
from earning.domain.held import APPROVED, PENDING, HeldEarning
from earning.domain.model import ActivityType, Rules, rules_from_json, rules_to_json
from earning.store.activity import challenge_from_row
from earning.store.events import EarningEvents, Written, resolved
from earning.store.tables import challenges, held_earnings, participations, rule_versions


def _held(row: Any) -> HeldEarning:
    return HeldEarning(
        row.held_earning_id, row.event_id, row.user_id, ActivityType(row.type), row.day, row.points,
        tuple((str(c), int(p)) for c, p in row.sponsored), row.reason, row.state, row.create_time,
        row.resolve_time, row.resolved_by, row.note, row.credit_request_id,
    )




class AdminRepository:
    """Rule versions, challenges, participations, held earnings and stored responses, on the caller's connection."""

    def __init__(self, conn: AsyncConnection, events: EarningEvents, written: Written) -> None:
        self._conn = conn
        self._events = events
        self._written = written

    async def latest_rule_version(self) -> int:
        return int((await self._conn.execute(select(func.coalesce(func.max(rule_versions.c.version), 0)))).scalar_one())

    async def all_rules(self) -> list[Rules]:
        rows = await self._conn.execute(select(rule_versions).order_by(rule_versions.c.version))
        return [rules_from_json(r.body, r.version, r.effective_from) for r in rows]

    async def insert_rules(self, rules: Rules, effective_from: datetime, now: datetime) -> None:
        await self._conn.execute(
            insert(rule_versions)
            .values(version=rules.version, effective_from=effective_from, body=rules_to_json(rules), create_time=now)
            .on_conflict_do_nothing()
        )

    async def lock_rules(self) -> None:
        """Serialize rule updates (versions are consecutive)."""
        await self._conn.execute(text("SELECT pg_advisory_xact_lock(7316417105)"))

    async def insert_challenge(self, challenge: Challenge) -> None:
        spec = challenge.spec
        await self._conn.execute(
            challenges.insert().values(
                challenge_id=challenge.challenge_id, name=spec.name, start_time=spec.start_time, end_time=spec.end_time,
                regions=list(spec.regions), activity_types=[t.value for t in spec.activity_types],
                multiplier_bps=spec.multiplier_bps, early_join_window_seconds=spec.early_join_window_seconds,
                early_join_bonus_points=spec.early_join_bonus_points, sponsor=spec.sponsor,
                sponsor_budget_points=spec.sponsor_budget_points, budget_spent_points=0,
                create_time=challenge.create_time,
            )
        )

    async def get_challenge(self, challenge_id: str, *, lock: bool = False) -> Challenge | None:
        stmt = select(challenges).where(challenges.c.challenge_id == challenge_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return challenge_from_row(row) if row is not None else None

    async def list_challenges(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Challenge]:
        conditions: list[Any] = []
        if region:
            conditions.append(
                or_(func.cardinality(challenges.c.regions) == 0, literal(region) == any_(challenges.c.regions))
            )
        if active_at is not None:
            conditions.append(and_(challenges.c.start_time <= active_at, challenges.c.end_time > active_at))
        if after is not None:
            conditions.append(
                or_(
                    challenges.c.create_time > after[0],
                    and_(challenges.c.create_time == after[0], challenges.c.challenge_id > after[1]),
                )
            )
        stmt = (
            select(challenges)
            .where(and_(True, *conditions))
            .order_by(challenges.c.create_time, challenges.c.challenge_id)
        )
        return [challenge_from_row(r) for r in await self._conn.execute(stmt.limit(limit))]

    async def get_participation(self, challenge_id: str, user_id: str) -> Participation | None:
        row = (
            await self._conn.execute(
                select(participations).where(
                    and_(participations.c.challenge_id == challenge_id, participations.c.user_id == user_id)
                )
            )
        ).first()
        if row is None:
            return None
        return Participation(row.challenge_id, row.user_id, row.join_time, row.early, row.bonus_points)

    async def insert_participation(self, p: Participation) -> None:
        await self._conn.execute(
            participations.insert().values(
                challenge_id=p.challenge_id, user_id=p.user_id, join_time=p.join_time, early=p.early,
                bonus_points=p.bonus_points,
            )
        )

    async def get_held(self, held_earning_id: str, *, lock: bool = False) -> HeldEarning | None:
        stmt = select(held_earnings).where(held_earnings.c.held_earning_id == held_earning_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return _held(row) if row is not None else None

    async def resolve_held(
        self, held_earning_id: str, state: int, when: datetime, by: str, note: str, credit_request_id: str
    ) -> None:
        """Resolve a pending held earning and append its earning_resolved event (the caller holds the
        row's lock, so one review resolves it and writes the one event)."""
        rows = (await self._conn.execute(
            held_earnings.update()
            .where(and_(held_earnings.c.held_earning_id == held_earning_id, held_earnings.c.state == PENDING))
            .values(state=state, resolve_time=when, resolved_by=by, note=note, credit_request_id=credit_request_id)
            .returning(held_earnings.c.user_id, held_earnings.c.points)
        )).all()  # fmt: skip
        if rows:
            [(user_id, points)] = rows
            await self._events.append(
                self._conn, [resolved(held_earning_id, user_id, state == APPROVED, points, by, when)]
            )
            self._written.events = True

    async def list_held(
        self, user_id: str, state: int, after: tuple[datetime, str] | None, limit: int
    ) -> list[HeldEarning]:
        conditions: list[Any] = []
        if user_id:
            conditions.append(held_earnings.c.user_id == user_id)
        if state:
            conditions.append(held_earnings.c.state == state)
        if after is not None:
            conditions.append(
                or_(
                    held_earnings.c.create_time > after[0],
                    and_(held_earnings.c.create_time == after[0], held_earnings.c.held_earning_id > after[1]),
                )
            )
        stmt = (
            select(held_earnings)
            .where(and_(True, *conditions))
            .order_by(held_earnings.c.create_time, held_earnings.c.held_earning_id)
            .limit(limit)
        )
        return [_held(r) for r in await self._conn.execute(stmt)]

    async def held_points_on(self, user_id: str, day: date) -> int:
        stmt = select(func.coalesce(func.sum(held_earnings.c.points), 0)).where(
            and_(held_earnings.c.user_id == user_id, held_earnings.c.day == day, held_earnings.c.state == PENDING)
        )
        return int((await self._conn.execute(stmt)).scalar_one())
