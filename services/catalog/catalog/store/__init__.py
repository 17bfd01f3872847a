"""Persistence of the catalog: one `CatalogStore` per transaction (the unit of work).

Stock moves are conditional UPDATEs (`... WHERE stock_available >= :q`), never
read-modify-write in Python; the CHECK constraints on `items` back them up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog.domain import Campaign, Item, ItemKind, Reservation, ReservationState
from catalog.store.rows import (
    campaign_from_row,
    campaign_values,
    item_from_row,
    item_values,
    reservation_from_row,
    reservation_values,
)
from catalog.tables import campaign_items, campaigns, idempotency, items, reservations

ACTIVE = int(ReservationState.ACTIVE)
COMMITTED = int(ReservationState.COMMITTED)


@dataclass(frozen=True)
class Claim:
    """Outcome of claiming a request id: a fresh claim, or the reply stored for it."""

    fingerprint: str
    stored_response: bytes | None


@dataclass(frozen=True)
class ItemFilter:
    region: str
    kind: ItemKind | None
    available_at: datetime | None
    campaign_id: str
    include_archived: bool


@dataclass(frozen=True)
class Expired:
    reservation_id: str
    item_id: str
    quantity: int
    took_stock: bool


def _running_at(moment: datetime) -> tuple[ColumnElement[bool], ...]:
    """A campaign's window contains `moment` and it was not ended before (`domain.applies`)."""
    return (
        campaigns.c.start_time <= moment,
        campaigns.c.end_time > moment,
        or_(campaigns.c.ended_time.is_(None), campaigns.c.ended_time > moment),
    )


class CatalogStore:
    """Queries and statements of one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # --- idempotency ---------------------------------------------------------------------------

    async def claim(self, method: str, request_id: str, fingerprint: str, now: datetime) -> Claim:
        """Claim (method, request_id) or return what it stored.

        ON CONFLICT waits for a concurrent claimer of the same key to finish, so the loser
        reads the winner's committed reply instead of running the effect twice.
        """
        inserted = await self.conn.execute(
            insert(idempotency)
            .values(method=method, request_id=request_id, fingerprint=fingerprint, create_time=now)
            .on_conflict_do_nothing()
            .returning(idempotency.c.request_id)
        )
        if inserted.first() is not None:
            return Claim(fingerprint, None)
        row = (
            await self.conn.execute(
                select(idempotency.c.fingerprint, idempotency.c.response).where(
                    idempotency.c.method == method, idempotency.c.request_id == request_id
                )
            )
        ).one()
        return Claim(row.fingerprint, row.response if row.response is not None else b"")

    async def save_response(self, method: str, request_id: str, response: bytes) -> None:
        await self.conn.execute(
            update(idempotency)
            .where(idempotency.c.method == method, idempotency.c.request_id == request_id)
            .values(response=response)
        )

    # --- items ---------------------------------------------------------------------------------

    async def insert_item(self, item: Item) -> None:
        await self.conn.execute(items.insert().values(**item_values(item)))

    async def get_item(self, item_id: str, *, for_update: bool = False) -> Item | None:
        query = select(items).where(items.c.item_id == item_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.conn.execute(query)).mappings().first()
        return item_from_row(row) if row is not None else None

    async def replace_item(self, item: Item, expected_version: int) -> bool:
        """Write the new state only if nobody updated the item since `expected_version`."""
        values = item_values(item)
        del values["item_id"], values["create_time"]
        result = await self.conn.execute(
            update(items)
            .where(items.c.item_id == item.item_id, items.c.version == expected_version)
            .values(**values)
        )
        return bool(result.rowcount)

    async def list_items(
        self, where: ItemFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[Item]:
        query = select(items)
        if where.region:
            query = query.where(
                or_(func.cardinality(items.c.regions) == 0, items.c.regions.any_() == where.region)
            )
        if where.kind is not None:
            query = query.where(items.c.kind == int(where.kind))
        if where.available_at is not None:
            at = where.available_at
            query = query.where(
                or_(items.c.available_from.is_(None), items.c.available_from <= at),
                or_(items.c.available_until.is_(None), items.c.available_until > at),
            )
        if where.campaign_id:
            query = query.where(
                items.c.item_id.in_(
                    select(campaign_items.c.item_id).where(campaign_items.c.campaign_id == where.campaign_id)
                )
            )
        if not where.include_archived:
            query = query.where(items.c.archived.is_(False))
        if after is not None:
            query = query.where(
                or_(
                    items.c.create_time > after[0],
                    and_(items.c.create_time == after[0], items.c.item_id > after[1]),
                )
            )
        query = query.order_by(items.c.create_time, items.c.item_id).limit(limit)
        return [item_from_row(r) for r in (await self.conn.execute(query)).mappings()]

    # --- campaigns -----------------------------------------------------------------------------

    async def insert_campaign(self, campaign: Campaign) -> None:
        await self.conn.execute(campaigns.insert().values(**campaign_values(campaign)))
        await self.conn.execute(
            campaign_items.insert(),
            [
                {"campaign_id": campaign.campaign_id, "item_id": item_id, "position": n}
                for n, item_id in enumerate(campaign.spec.item_ids)
            ],
        )

    async def get_campaign(self, campaign_id: str, *, for_update: bool = False) -> Campaign | None:
        query = select(campaigns).where(campaigns.c.campaign_id == campaign_id)
        rows = (await self.conn.execute(query.with_for_update() if for_update else query)).mappings().all()
        found = await self._with_items(rows)
        return found[0] if found else None

    async def set_campaign_ended(self, campaign_id: str, ended_time: datetime) -> None:
        await self.conn.execute(
            update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(ended_time=ended_time)
        )

    async def campaigns_for_item(self, item_id: str, now: datetime) -> list[Campaign]:
        """Campaigns covering the item whose window contains `now` (region is checked by the domain)."""
        ids = select(campaign_items.c.campaign_id).where(campaign_items.c.item_id == item_id)
        query = select(campaigns).where(campaigns.c.campaign_id.in_(ids), *_running_at(now))
        return await self._with_items((await self.conn.execute(query)).mappings().all())

    async def list_campaigns(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Campaign]:
        query = select(campaigns)
        if region:
            query = query.where(
                or_(func.cardinality(campaigns.c.regions) == 0, campaigns.c.regions.any_() == region)
            )
        if active_at is not None:
            query = query.where(*_running_at(active_at))
        if after is not None:
            query = query.where(
                or_(
                    campaigns.c.create_time > after[0],
                    and_(campaigns.c.create_time == after[0], campaigns.c.campaign_id > after[1]),
                )
            )
        query = query.order_by(campaigns.c.create_time, campaigns.c.campaign_id).limit(limit)
        return await self._with_items((await self.conn.execute(query)).mappings().all())

    async def _with_items(self, rows: Sequence[Any]) -> list[Campaign]:
        if not rows:
            return []
        members: dict[str, list[str]] = {r["campaign_id"]: [] for r in rows}
        links = await self.conn.execute(
            select(campaign_items.c.campaign_id, campaign_items.c.item_id)
            .where(campaign_items.c.campaign_id.in_(list(members)))
            .order_by(campaign_items.c.campaign_id, campaign_items.c.position)
        )
        for link in links:
            members[link.campaign_id].append(link.item_id)
        return [campaign_from_row(r, tuple(members[r["campaign_id"]])) for r in rows]

    # --- per-user limit ------------------------------------------------------------------------

    async def lock_user_item(self, item_id: str, user_id: str) -> None:
        """Serialize one user's reservations of one item (only items with a per-user limit)."""
        await self.conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"catalog-user-limit:{item_id}:{user_id}"},
        )

    async def units_used(self, item_id: str, user_id: str, since: datetime | None, now: datetime) -> int:
        """Units counted against the limit: committed minus returned, plus active ones not yet expired."""
        counted = reservations.c.quantity - reservations.c.returned_quantity  # returned is 0 unless committed
        query = select(func.coalesce(func.sum(counted), 0)).where(
            reservations.c.item_id == item_id,
            reservations.c.user_id == user_id,
            or_(
                reservations.c.state == COMMITTED,
                and_(reservations.c.state == ACTIVE, reservations.c.expire_time > now),
            ),
        )
        if since is not None:
            query = query.where(reservations.c.create_time >= since)
        return int((await self.conn.execute(query)).scalar_one())

    # --- stock ---------------------------------------------------------------------------------

    async def take_stock(self, item_id: str, quantity: int) -> int | None:
        """available -> reserved if enough is free; the units left, or None."""
        row = (
            await self.conn.execute(
                update(items)
                .where(items.c.item_id == item_id, items.c.stock_available >= quantity)
                .values(
                    stock_available=items.c.stock_available - quantity,
                    stock_reserved=items.c.stock_reserved + quantity,
                )
                .returning(items.c.stock_available)
            )
        ).first()
        return int(row.stock_available) if row is not None else None

    async def settle_stock(self, item_id: str, quantity: int, *, sold: bool) -> None:
        """reserved -> sold (commit) or reserved -> available (release/expiry)."""
        target = items.c.stock_sold if sold else items.c.stock_available
        await self.conn.execute(
            update(items)
            .where(items.c.item_id == item_id)
            .values({items.c.stock_reserved: items.c.stock_reserved - quantity, target: target + quantity})
        )

    async def unsell_stock(self, item_id: str, quantity: int) -> bool:
        """sold -> available (ReturnStock); False if fewer than `quantity` units are sold."""
        result = await self.conn.execute(
            update(items)
            .where(items.c.item_id == item_id, items.c.stock_sold >= quantity)
            .values(stock_sold=items.c.stock_sold - quantity, stock_available=items.c.stock_available + quantity)
        )
        return bool(result.rowcount)

    # --- reservations --------------------------------------------------------------------------

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


@asynccontextmanager
async def unit_of_work(engine: AsyncEngine) -> AsyncIterator[CatalogStore]:
    """One transaction: committed when the block ends normally, rolled back otherwise."""
    async with engine.begin() as conn:
        yield CatalogStore(conn)
