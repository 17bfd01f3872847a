"""The catalog's unit of work over one engine (`use_cases.ports.Database`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog.store.campaigns import CampaignRepository
from catalog.store.hot import HotCache, HotConnection, driver_of
from catalog.store.idempotency import RequestLog
from catalog.store.items import ItemRepository
from catalog.store.reservations import ReservationRepository
from points_platform.db import retry_serialization

T = TypeVar("T")


class Repositories:
    """Every repository on one connection (`use_cases.ports.Transaction`)."""

    def __init__(self, conn: AsyncConnection, cache: HotCache) -> None:
        self._conn = conn
        self._cache = cache
        self.requests = RequestLog(conn)
        self.items = ItemRepository(conn)
        self.campaigns = CampaignRepository(conn)
        self.reservations = ReservationRepository(conn)

    async def reads(self) -> HotConnection:
        """The hot path's reads inside this transaction, on its own raw connection."""
        return HotConnection(self._cache, await driver_of(self._conn, in_transaction=True))


class CatalogDatabase:
    """Transactions, reads and the hot statements, all from one engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._hot = HotCache()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repositories]:
        """One transaction: committed when the block ends normally, rolled back otherwise."""
        async with self._engine.begin() as conn:
            yield Repositories(conn, self._hot)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Repositories]:
        async with self._engine.connect() as conn:
            yield Repositories(conn, self._hot)

    @asynccontextmanager
    async def hot(self) -> AsyncIterator[HotConnection]:
        async with self._engine.connect() as conn:
            yield HotConnection(self._hot, await driver_of(conn))

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        return await retry_serialization(attempt)
