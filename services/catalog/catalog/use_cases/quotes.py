"""Quote: the price and redeemability of units for one user now (read only).

The item and its campaigns come from memory (`ports.CatalogMemory`); the database is read only for
what moves without a catalog change: a limited item's stock and a per-user limit's count.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from catalog import domain
from catalog.domain import Stock
from catalog.use_cases.items import item_not_found
from catalog.use_cases.ports import CatalogMemory, Database, Remembered
from catalog.use_cases.shared_reads import SharedReads
from points_platform.clock import Clock

# The stock counters (None unless asked for) and the user's units; None: the item is not at that version.
Counts = tuple[Stock | None, int] | None


def _needs_database(remembered: Remembered) -> bool:
    item = remembered.item
    return item is not None and (item.spec.limited_stock or item.spec.per_user_limit > 0)


class Quotes:
    def __init__(self, db: Database, memory: CatalogMemory, clock: Clock) -> None:
        self._db = db
        self._memory = memory
        self._clock = clock
        # A limited item without a per-user limit: concurrent quotes share each stock read.
        self._stock = SharedReads[tuple[str, int], Counts](self._read_stock)

    async def _read_stock(self, key: tuple[str, int]) -> Counts:
        item_id, version = key
        return await self._db.quote_reads().counts(item_id, version, "", None, self._clock.now(), stock=True,
                                                   used=False)

    async def quote(self, item_id: str, user_id: str, region: str, quantity: int) -> domain.Quote:
        now = self._clock.now()
        remembered = self._memory.recall(item_id)
        used = 0
        if remembered is None or _needs_database(remembered):
            reads = self._db.quote_reads()
            counts = None
            if remembered is not None:
                # One statement: the stock and the user's count at the item's remembered version.
                item = remembered.item
                assert item is not None  # _needs_database
                if item.spec.per_user_limit > 0:
                    counts = await reads.counts(item_id, item.version, user_id, self._since(item, now), now,
                                                stock=item.spec.limited_stock, used=True)
                else:
                    counts = await self._stock.get((item_id, item.version))
                # None: changed since it was remembered (its notification not handled yet).
            if counts is not None and remembered is not None and remembered.item is not None:
                stock, used = counts
                if stock is not None:
                    remembered = replace(remembered, item=replace(remembered.item, stock=stock))
            else:
                # Read now, stock included; the count goes with the version read.
                remembered = await self._memory.load(item_id, reads)
                item = remembered.item
                if item is not None and item.spec.per_user_limit > 0:
                    used = await reads.units_used(item_id, user_id, self._since(item, now), now)
        if remembered.item is None:
            raise item_not_found(item_id)
        return domain.quote(remembered.item, remembered.campaigns, region, quantity, used, now)

    @staticmethod
    def _since(item: domain.Item, now: datetime) -> datetime | None:
        if item.spec.per_user_limit <= 0:
            return None
        return domain.limit_window_start(item.spec.per_user_limit_window, now)
