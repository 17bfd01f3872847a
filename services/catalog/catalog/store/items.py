"""Items and their stock counters.

Stock moves are conditional UPDATEs (`... WHERE stock_available >= :q`), never
read-modify-write in Python; the CHECK constraints on `items` back them up.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.domain import Item, Stock
from catalog.store.rows import item_from_row, item_values
from catalog.store.tables import campaign_items, items
from catalog.use_cases.ports import ItemFilter


class ItemRepository:
    """Items of one transaction: rows, versioned replace, lists and the stock counters."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

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

    async def take_stock(self, item_id: str, quantity: int) -> Stock | None:
        """available -> reserved if enough is free; the counters after, or None."""
        c = items.c
        row = (
            await self.conn.execute(
                update(items)
                .where(c.item_id == item_id, c.stock_available >= quantity)
                .values(stock_available=c.stock_available - quantity, stock_reserved=c.stock_reserved + quantity)
                .returning(c.stock_total, c.stock_available, c.stock_reserved, c.stock_sold)
            )
        ).first()
        return Stock(*map(int, row)) if row is not None else None

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
