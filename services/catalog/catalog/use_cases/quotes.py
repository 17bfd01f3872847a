"""Quote: the price and redeemability of units for one user now (read only).

The item and its campaigns come from memory (`ports.CatalogMemory`); the database is read only for
what moves without a catalog change: a limited item's stock and a per-user limit's count.
"""

from __future__ import annotations

from dataclasses import replace

from catalog import domain
from catalog.use_cases.items import item_not_found
from catalog.use_cases.ports import CatalogMemory, Database, Remembered
from points_platform.clock import Clock


def _needs_database(remembered: Remembered) -> bool:
    item = remembered.item
    return item is not None and (item.spec.limited_stock or item.spec.per_user_limit > 0)


class Quotes:
    def __init__(self, db: Database, memory: CatalogMemory, clock: Clock) -> None:
        self._db = db
        self._memory = memory
        self._clock = clock

    async def quote(self, item_id: str, user_id: str, region: str, quantity: int) -> domain.Quote:
        now = self._clock.now()
        remembered = self._memory.recall(item_id)
        used = 0
        if remembered is None or _needs_database(remembered):
            async with self._db.hot() as hot:
                if remembered is None:
                    remembered = await self._memory.load(item_id, hot)
                elif remembered.item is not None and remembered.item.spec.limited_stock:
                    stock = await hot.stock(item_id, remembered.item.version)
                    # None: changed since it was remembered (its notification not handled yet).
                    remembered = (
                        await self._memory.load(item_id, hot) if stock is None
                        else replace(remembered, item=replace(remembered.item, stock=stock))
                    )
                item = remembered.item
                if item is not None and item.spec.per_user_limit > 0:
                    since = domain.limit_window_start(item.spec.per_user_limit_window, now)
                    used = await hot.units_used(item_id, user_id, since, now)
        if remembered.item is None:
            raise item_not_found(item_id)
        return domain.quote(remembered.item, remembered.campaigns, region, quantity, used, now)
