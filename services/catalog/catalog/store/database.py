"""The catalog's storage over the platform's unit of work (`use_cases.ports.Database`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from catalog.store.campaigns import CampaignRepository
from catalog.store.events import EventRepository
from catalog.store.hot import HotCache, HotConnection, driver_of
from catalog.store.items import ItemRepository
from catalog.store.reservations import ReservationRepository
from catalog.use_cases.ports import UnitOfWork
from points_platform.outbox import Outbox
from points_platform.read_pool import ReadPool
from points_platform.unit_of_work import Transaction, Transactions

T = TypeVar("T")


class Repositories:
    """Every repository on one transaction (`use_cases.ports.Repositories`)."""

    def __init__(self, tx: Transaction, cache: HotCache, outbox: Outbox) -> None:
        self._tx = tx
        self._cache = cache
        self.items = ItemRepository(tx.connection)
        self.campaigns = CampaignRepository(tx.connection)
        self.reservations = ReservationRepository(tx.connection)
        self.events = EventRepository(tx.connection, outbox)

    async def reads(self) -> HotConnection:
        """The hot path's reads inside this transaction, on its own raw connection."""
        return HotConnection(self._cache, await self._tx.driver())


class CatalogDatabase:
    """Repositories on the platform's transactions, and the hot statements, from one engine's pool;
    a Quote's reads from `read_pool`; events go to `outbox` (its table in the same database)."""

    def __init__(self, transactions: Transactions, outbox: Outbox, read_pool: ReadPool) -> None:
        self._transactions = transactions
        self._outbox = outbox
        self._cache = HotCache()
        self._quote_reads = HotConnection(self._cache, read_pool)

    def on(self, uow: UnitOfWork) -> Repositories:
        if not isinstance(uow, Transaction):
            raise TypeError(f"a unit of work is a points_platform Transaction, not {type(uow).__name__}")
        return Repositories(uow, self._cache, self._outbox)

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        return await self._transactions.run(work)

    @asynccontextmanager
    async def hot(self) -> AsyncIterator[HotConnection]:
        """A pooled connection outside any transaction: each hot statement commits on its own (it
        writes its effect, key and reply together, so it needs no transaction around it)."""
        async with self._transactions.engine.connect() as conn:
            yield HotConnection(self._cache, await driver_of(conn))

    def quote_reads(self) -> HotConnection:
        """A Quote's reads on the read pool: each statement takes a connection of its own, outside any
        transaction (autocommit)."""
        return self._quote_reads
