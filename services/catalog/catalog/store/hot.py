"""The hot path on the raw asyncpg connection: ReserveStock, Commit/ReleaseReservation, Quote, GetItem.

Statements are written once below (asyncpg prepares and caches them per connection). Each
mutation here is ONE autocommit statement whose CTEs chain the effect to the request's key in the
platform's idempotency table (`points_platform.idempotency`: its row shape, its key and
fingerprint, the reply as the reply message's proto bytes), so the key, the effect and the
stored reply commit together or not at all:

- a same-key row inserted meanwhile makes the claim INSERT fail with a unique violation, which
  aborts the whole statement (stock and reservation included);
- a guard that no longer holds (item version changed, not enough stock, reservation no longer
  ACTIVE) makes the chain produce no row, so nothing is written.

In both cases nothing is written and the caller runs the general path under the platform's
idempotency rules, which reports the exact reason (or replays; a key already taken is never
replayed here). The item's spec is cached per (item_id, version): every
change of spec or `archived` bumps the version, stock counters are always read fresh. The
campaigns linked to an item are cached by their number of links plus the number of them ended
early (campaigns are never unlinked and end at most once, so that sum grows with every change;
windows and regions are checked per call).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.domain import Campaign, Item, Reservation, ReservationState, Stock
from catalog.store.rows import campaign_from_row, item_from_row, reservation_from_row
from catalog.use_cases.commands import RequestKey
from catalog.use_cases.ports import ItemRead, ReservationRead

# A same-key race (unique claim) or a lock cycle with the general path: nothing was written;
# the caller falls back to the transactional path, which replays or decides exactly.
_FALL_BACK_ON = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

ACTIVE = int(ReservationState.ACTIVE)
_CACHE_LIMIT = 10_000

_ITEM_COLUMNS = (
    "i.item_id, i.version, i.kind, i.title, i.description, i.currency, i.price_amount, i.regions, "
    "i.available_from, i.available_until, i.limited_stock, i.stock_total, i.stock_available, "
    "i.stock_reserved, i.stock_sold, i.per_user_limit, i.per_user_limit_window, i.attributes, i.entitlement_terms, "
    "i.archived, i.create_time, i.update_time"
)
# Changes only by growing (links are never removed, a campaign ends once): the campaigns cache key.
_LINKS = (
    "(SELECT count(*) + count(c.ended_time) FROM campaign_items ci JOIN campaigns c ON c.campaign_id = ci.campaign_id"
    " WHERE ci.item_id = i.item_id) AS campaign_links"
)

# $1 item_id
READ_ITEM = f"SELECT {_ITEM_COLUMNS}, {_LINKS} FROM items i WHERE i.item_id = $1"

# $1 item_id, $2 user_id, $3 window start (NULL = lifetime), $4 now, $5 read the user's units:
# the counters a reservation moves, the version they belong to and the units counted against the
# per-user limit (UNITS_USED's sum), in one statement.
READ_COUNTS = """
SELECT i.version, i.stock_total, i.stock_available, i.stock_reserved, i.stock_sold,
       CASE WHEN $5 THEN (SELECT coalesce(sum(r.quantity - r.returned_quantity), 0) FROM reservations r
         WHERE r.item_id = $1 AND r.user_id = $2 AND ($3::timestamptz IS NULL OR r.create_time >= $3)
           AND (r.state = 2 OR (r.state = 1 AND r.expire_time > $4))) ELSE 0 END AS used
FROM items i WHERE i.item_id = $1
"""

# $1 item_id, $2 user_id, $3 request_id: the item and whether the key is taken.
READ_ITEM_AND_CLAIM = f"""
SELECT {_ITEM_COLUMNS}, {_LINKS}, k.request_id IS NOT NULL AS claimed
FROM items i LEFT JOIN idempotency k ON k.user_id = $2 AND k.request_id = $3
WHERE i.item_id = $1
"""

# $1 item_id: every campaign linked to it, whatever its window and regions.
LINKED_CAMPAIGNS = """
SELECT c.campaign_id, c.name, c.sponsor, c.start_time, c.end_time, c.regions, c.percent_off_bps, c.fixed_currency,
       c.fixed_amount, c.create_time, c.ended_time,
       ARRAY(SELECT m.item_id FROM campaign_items m WHERE m.campaign_id = c.campaign_id ORDER BY m.position) AS item_ids
FROM campaigns c JOIN campaign_items ci ON ci.campaign_id = c.campaign_id
WHERE ci.item_id = $1
"""

# $1 item_id, $2 user_id, $3 window start (NULL = lifetime), $4 now
UNITS_USED = """
SELECT coalesce(sum(quantity - returned_quantity), 0) FROM reservations
WHERE item_id = $1 AND user_id = $2 AND ($3::timestamptz IS NULL OR create_time >= $3)
  AND (state = 2 OR (state = 1 AND expire_time > $4))
"""

# The guard of a reservation: the item still at the version validated in Python, and for a
# limited item the units taken (available -> reserved) by a conditional UPDATE. The unlimited
# guard takes a share lock: it waits for an UpdateItem in progress (which holds the row) and then
# sees its new version and falls back, so a per-user limit being added cannot be slipped past by a
# reservation that a concurrent general-path reservation of the same user would not count.
_UNLIMITED_GUARD = "SELECT item_id FROM items WHERE item_id = $1 AND version = $2 AND NOT limited_stock FOR SHARE"
# The limited guard also leaves a reservation that would cross the low-stock threshold $18 or take
# the last units to the general path, which appends the stock event in its transaction: crossings
# are rare (one per threshold crossed, not per reservation), so the hot statements write no events.
_LIMITED_GUARD = """UPDATE items SET stock_available = stock_available - $10, stock_reserved = stock_reserved + $10
  WHERE item_id = $1 AND version = $2 AND limited_stock AND stock_available > $10
    AND (stock_available <= $18 OR stock_available - $10 > $18) RETURNING item_id"""
# $1 item_id, $2 item version, $3 request_id, $4 fingerprint, $5 reply, $6 now, $7 reservation_id,
# $8 user_id, $9 region, $10 quantity, $11 currency, $12 unit amount, $13 total amount, $14 campaign_id,
# $15 expire_time, $16 the key's user_id, $17 method (full name), $18 low-stock threshold (limited only)
_RESERVE = """
WITH guard AS ({guard}),
claim AS (
  INSERT INTO idempotency (user_id, request_id, method, fingerprint, reply, created_time)
  SELECT $16, $3, $17, $4, $5, $6 FROM guard RETURNING request_id
)
INSERT INTO reservations (reservation_id, item_id, item_version, user_id, region, quantity, currency,
  unit_amount, total_amount, campaign_id, state, took_stock, expire_time, create_time, resolve_time,
  returned_quantity)
SELECT $7, $1, $2, $8, $9, $10, $11, $12, $13, $14, 1, {took}, $15, $6, NULL, 0 FROM claim
RETURNING reservation_id
"""
RESERVE_UNLIMITED = _RESERVE.format(guard=_UNLIMITED_GUARD, took="false")
RESERVE_LIMITED = _RESERVE.format(guard=_LIMITED_GUARD, took="true")

# $1 reservation_id, $2 user_id, $3 request_id
READ_RESERVATION_AND_CLAIM = """
SELECT r.reservation_id, r.item_id, r.item_version, r.user_id, r.region, r.quantity, r.currency, r.unit_amount,
       r.total_amount, r.campaign_id, r.state, r.took_stock, r.expire_time, r.create_time, r.resolve_time,
       r.returned_quantity, k.request_id IS NOT NULL AS claimed
FROM reservations r LEFT JOIN idempotency k ON k.user_id = $2 AND k.request_id = $3
WHERE r.reservation_id = $1
"""

# ACTIVE -> $2 and, if it took stock, reserved -> sold/available; key + reply with it.
# $1 reservation_id, $2 new state, $3 now, $4 method, $5 request_id, $6 fingerprint, $7 reply, $8 user_id
_RESOLVE = """
WITH resolved AS (
  UPDATE reservations SET state = $2, resolve_time = $3
  WHERE reservation_id = $1 AND state = 1 {still_valid}
  RETURNING item_id, quantity, took_stock
),
settled AS (
  UPDATE items SET stock_reserved = items.stock_reserved - resolved.quantity,
                   {target} = items.{target} + resolved.quantity
  FROM resolved WHERE items.item_id = resolved.item_id AND resolved.took_stock
)
INSERT INTO idempotency (user_id, request_id, method, fingerprint, reply, created_time)
SELECT $8, $5, $4, $6, $7, $3 FROM resolved
RETURNING request_id
"""
COMMIT = _RESOLVE.format(still_valid="AND expire_time > $3", target="stock_sold")
RELEASE = _RESOLVE.format(still_valid="", target="stock_available")


async def driver_of(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, in autocommit: every statement here commits on its own.

    Nothing on `conn` may run through SQLAlchemy before (it would open a transaction that is
    rolled back when the connection goes back to the pool, taking these writes with it).
    """
    driver = cast(asyncpg.Connection, (await conn.get_raw_connection()).driver_connection)
    if driver.is_in_transaction():
        raise RuntimeError("catalog hot path statements must run outside a transaction")
    return driver


class HotCache:
    """The item specs and campaign lists the hot statements reuse between calls (one per process)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], Item] = {}
        self.campaigns: dict[str, tuple[int, list[Campaign]]] = {}

    def item(self, row: asyncpg.Record) -> Item:
        """The item of a row: spec from the cache when the version is known, stock always fresh."""
        key = (row["item_id"], row["version"])
        cached = self.items.get(key)
        stock = Stock(row["stock_total"], row["stock_available"], row["stock_reserved"], row["stock_sold"])
        if cached is None:
            values: dict[str, Any] = dict(row)
            for column in ("attributes", "entitlement_terms"):  # asyncpg hands JSONB over as text
                if isinstance(values[column], str):
                    values[column] = json.loads(values[column])
            cached = item_from_row(values)
            if len(self.items) >= _CACHE_LIMIT:
                self.items.clear()
            self.items[key] = cached
            return cached
        return cached if cached.stock == stock else replace(cached, stock=stock)


class Statements(Protocol):
    """Where the statements run: one raw connection, or the read pool (a connection per statement)."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class HotConnection:
    """The hot statements on one raw connection (`use_cases.ports.HotStatements`), or a Quote's reads
    on the read pool (`use_cases.ports.QuoteReads`)."""

    def __init__(self, cache: HotCache, driver: Statements) -> None:
        self._cache = cache
        self._db = driver

    async def campaigns(self, item_id: str, links: int) -> list[Campaign]:
        """Every campaign linked to the item (any window/region): cached while the number of links holds.

        Read after `links` was counted, so the list holds at least those campaigns (a newer one
        only makes the next call read again).
        """
        found = self._cache.campaigns.get(item_id)
        if found is not None and found[0] == links:
            return found[1]
        rows = await self._db.fetch(LINKED_CAMPAIGNS, item_id) if links else []
        campaigns = [campaign_from_row(row, tuple(row["item_ids"])) for row in rows]
        if len(self._cache.campaigns) >= _CACHE_LIMIT:
            self._cache.campaigns.clear()
        self._cache.campaigns[item_id] = (links, campaigns)
        return campaigns

    async def read_item(self, item_id: str) -> tuple[Item, int] | None:
        row = await self._db.fetchrow(READ_ITEM, item_id)
        return (self._cache.item(row), row["campaign_links"]) if row is not None else None

    async def read_item_and_claim(self, item_id: str, key: RequestKey) -> ItemRead | None:
        row = await self._db.fetchrow(READ_ITEM_AND_CLAIM, item_id, key.user_id, key.request_id)
        if row is None:
            return None
        return ItemRead(self._cache.item(row), row["campaign_links"], row["claimed"])

    async def counts(self, item_id: str, version: int, user_id: str, since: datetime | None, now: datetime, *,
                     stock: bool, used: bool) -> tuple[Stock | None, int] | None:
        row = await self._db.fetchrow(READ_COUNTS, item_id, user_id, since, now, used)
        if row is None or row[0] != version:
            return None
        return (Stock(row[1], row[2], row[3], row[4]) if stock else None), int(row[5])

    async def units_used(self, item_id: str, user_id: str, since: datetime | None, now: datetime) -> int:
        return int(await self._db.fetchval(UNITS_USED, item_id, user_id, since, now))

    async def reserve(self, r: Reservation, key: RequestKey, reply: bytes, *, low_threshold: int) -> bool:
        """Key + reply + (take stock) + insert in one statement; False when a guard failed (a stock
        crossing included) or the key is taken."""
        statement, threshold = (RESERVE_LIMITED, (low_threshold,)) if r.took_stock else (RESERVE_UNLIMITED, ())
        try:
            row = await self._db.fetchrow(
                statement, r.item_id, r.item_version, key.request_id, key.fingerprint, reply, r.create_time,
                r.reservation_id, r.user_id, r.region, r.quantity, int(r.unit_price.currency),
                r.unit_price.amount, r.total_price.amount, r.campaign_id, r.expire_time, key.user_id, key.method,
                *threshold,
            )
        except _FALL_BACK_ON:
            return False
        return row is not None

    async def read_reservation_and_claim(self, reservation_id: str, key: RequestKey) -> ReservationRead | None:
        row = await self._db.fetchrow(READ_RESERVATION_AND_CLAIM, reservation_id, key.user_id, key.request_id)
        if row is None:
            return None
        return ReservationRead(reservation_from_row(row), row["claimed"])

    async def resolve(self, resolved: Reservation, key: RequestKey, reply: bytes) -> bool:
        """ACTIVE -> resolved.state (+ stock) + key + reply in one statement; False if it did not apply."""
        statement = COMMIT if resolved.state == ReservationState.COMMITTED else RELEASE
        try:
            row = await self._db.fetchrow(
                statement, resolved.reservation_id, int(resolved.state), resolved.resolve_time, key.method,
                key.request_id, key.fingerprint, reply, key.user_id,
            )
        except _FALL_BACK_ON:
            return False
        return row is not None
