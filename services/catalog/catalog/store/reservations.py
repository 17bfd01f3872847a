"""Reservations: the per-user count and lock, resolution, returns and expiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.domain import Reservation, ReservationState
from catalog.store.rows import reservation_from_row, reservation_values
from catalog.store.tables import reservations
from catalog.use_cases.ports import Expired

ACTIVE = int(ReservationState.ACTIVE)
COMMITTED = int(ReservationState.COMMITTED)


class ReservationRepository:
    """Reservations of one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock_user_item(self, item_id: str, user_id: str) -> None:
        """Serialize one user's reservations of one item (only items with a per-user limit)."""
        await self.conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"catalog-user-limit:{item_id}:{user_id}"},
        )

    async def insert_reservation(self, reservation: Reservation) -> None:
        await self.conn.execute(reservations.insert().values(**reservation_values(reservation)))

    async def get_reservation(self, reservation_id: str, *, for_update: bool = False) -> Reservation | None:
        query = select(reservations).where(reservations.c.reservation_id == reservation_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.conn.execute(query)).mappings().first()
        return reservation_from_row(row) if row is not None else None

    async def resolve_reservation(self, reservation_id: str, state: ReservationState, now: datetime) -> None:
        await self.conn.execute(
            update(reservations)
            .where(reservations.c.reservation_id == reservation_id, reservations.c.state == ACTIVE)
            .values(state=int(state), resolve_time=now)
        )

    async def add_returned(self, reservation_id: str, quantity: int) -> None:
        """Count `quantity` more units of a committed reservation as returned (the CHECK caps it at quantity)."""
        await self.conn.execute(
            update(reservations)
            .where(reservations.c.reservation_id == reservation_id, reservations.c.state == COMMITTED)
            .values(returned_quantity=reservations.c.returned_quantity + quantity)
        )

    async def expire_due(self, now: datetime, limit: int, item_id: str | None = None) -> list[Expired]:
        """Mark due active reservations EXPIRED; rows another transaction holds are skipped."""
        due = (
            select(reservations.c.reservation_id)
            .where(reservations.c.state == ACTIVE, reservations.c.expire_time <= now)
            .order_by(reservations.c.expire_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if item_id is not None:
            due = due.where(reservations.c.item_id == item_id)
        rows = await self.conn.execute(
            update(reservations)
            .where(reservations.c.reservation_id.in_(due.scalar_subquery()), reservations.c.state == ACTIVE)
            .values(state=int(ReservationState.EXPIRED), resolve_time=literal(now))
            .returning(
                reservations.c.reservation_id,
                reservations.c.item_id,
                reservations.c.quantity,
                reservations.c.took_stock,
            )
        )
        return [Expired(r.reservation_id, r.item_id, int(r.quantity), bool(r.took_stock)) for r in rows]
