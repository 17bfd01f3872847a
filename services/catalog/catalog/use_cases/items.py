"""Item use cases: create, versioned update, read and list."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import structlog

from catalog import domain
from catalog.domain import Item, Stock
from catalog.use_cases.commands import CreateItem, Page, UpdateItem
from catalog.use_cases.ids import derived_id
from catalog.use_cases.ports import Database, ItemFilter, UnitOfWork
from points_platform.clock import Clock
from points_platform.errors import Aborted, FailedPrecondition, NotFound

log = structlog.get_logger("catalog")


def item_not_found(item_id: str) -> NotFound:
    return NotFound("ITEM_NOT_FOUND", f"no item {item_id}", metadata={"item_id": item_id})


class Items:
    def __init__(self, db: Database, clock: Clock, *, stock_low_threshold: int) -> None:
        self._db = db
        self._clock = clock
        self._low_threshold = stock_low_threshold

    async def create_item(self, cmd: CreateItem, uow: UnitOfWork) -> Item:
        tx, now = self._db.on(uow), self._clock.now()
        total = cmd.spec.stock_total if cmd.spec.limited_stock else 0
        item = Item(
            item_id=derived_id("item", cmd.request_id),
            version=1,
            spec=cmd.spec,
            stock=Stock(total, total, 0, 0),
            archived=False,
            create_time=now,
            update_time=now,
        )
        await tx.items.insert_item(item)
        log.info("item_created", item_id=item.item_id, kind=cmd.spec.kind.name)
        return item

    async def update_item(self, cmd: UpdateItem, uow: UnitOfWork) -> Item:
        tx, now = self._db.on(uow), self._clock.now()
        item = await tx.items.get_item(cmd.item_id, for_update=True)
        if item is None:
            raise item_not_found(cmd.item_id)
        if cmd.expected_version and cmd.expected_version != item.version:
            raise Aborted(
                "VERSION_MISMATCH",
                f"item is at version {item.version}, not {cmd.expected_version}",
                metadata={"item_id": item.item_id, "current_version": str(item.version)},
            )
        stock = item.stock
        if cmd.spec.limited_stock:
            restocked = domain.restocked(item.stock, cmd.spec.stock_total)
            if restocked is None:
                raise FailedPrecondition(
                    "STOCK_BELOW_COMMITTED",
                    "stock_total may not drop below reserved + sold units",
                    metadata={"reserved": str(stock.reserved), "sold": str(stock.sold)},
                )
            stock = restocked
        updated = replace(
            item, version=item.version + 1, spec=cmd.spec, stock=stock, archived=cmd.archived, update_time=now
        )
        await tx.items.replace_item(updated, item.version)
        if item.spec.limited_stock and cmd.spec.limited_stock:  # a lower total can cross a threshold
            await tx.events.append(domain.stock_events(
                item.item_id, updated.version, before=item.stock.available, after=stock.available,
                total=stock.total, low_threshold=self._low_threshold), now)
        log.info("item_updated", item_id=item.item_id, version=updated.version)
        return updated

    async def get_item(self, item_id: str) -> Item:
        async with self._db.hot() as hot:
            found = await hot.read_item(item_id)
        if found is None:
            raise item_not_found(item_id)
        return found[0]

    async def list_items(self, where: ItemFilter, after: tuple[datetime, str] | None, size: int) -> Page[Item]:
        found = await self._db.run(lambda uow: self._db.on(uow).items.list_items(where, after, size + 1))
        page = found[:size]
        more = len(found) > size
        return Page(page, (page[-1].create_time, page[-1].item_id) if more else None)
