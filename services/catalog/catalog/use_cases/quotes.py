"""Quote: the price and redeemability of units for one user now (read only, on the hot statements)."""

from __future__ import annotations

from catalog import domain
from catalog.use_cases.items import item_not_found
from catalog.use_cases.ports import Database
from points_platform.clock import Clock


class Quotes:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def quote(self, item_id: str, user_id: str, region: str, quantity: int) -> domain.Quote:
        now = self._clock.now()
        async with self._db.hot() as hot:
            found = await hot.read_item(item_id)
            if found is None:
                raise item_not_found(item_id)
            item, links = found
            campaigns = await hot.campaigns(item_id, links)
            used = 0
            if item.spec.per_user_limit > 0:
                since = domain.limit_window_start(item.spec.per_user_limit_window, now)
                used = await hot.units_used(item_id, user_id, since, now)
        return domain.quote(item, campaigns, region, quantity, used, now)
