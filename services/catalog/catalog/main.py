"""Composition root: settings -> migrations -> engine -> unit of work -> use cases -> servicer -> server.

`start` runs a real catalog server in-process (tests); `main` is `python -m catalog`.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.api import CatalogApi, service_spec
from catalog.api.mapping import reservation_reply
from catalog.config import CatalogSettings
from catalog.store import events, tables
from catalog.store.database import CatalogDatabase
from catalog.store.memory import NotifiedMemory, Retry
from catalog.use_cases.campaigns import Campaigns
from catalog.use_cases.items import Items
from catalog.use_cases.quotes import Quotes
from catalog.use_cases.reservations import Reservations
from points_platform.clock import Clock, SystemClock
from points_platform.config import settings_or_exit
from points_platform.db import asyncpg_dsn, create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.outbox import Outbox
from points_platform.read_pool import ReadPool
from points_platform.relay import RelayJob, start_relays
from points_platform.server import RunningServer, ServiceSpec, create_server, run_process, run_service
from points_platform.unit_of_work import Transactions

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Wiring:
    reservations: Reservations
    spec: ServiceSpec
    memory: NotifiedMemory
    relays: RelayJob
    read_pool: ReadPool

    async def close(self) -> None:
        """Stop the outbox relay after its pass under way and close the read pool (the catalog calls no
        peers; the engine belongs to the caller, and is disposed after this)."""
        await self.relays.close()
        await self.read_pool.close()


def build(settings: CatalogSettings, engine: AsyncEngine, clock: Clock, memory_retry: Retry | None = None) -> Wiring:
    """Wire the use cases; with `settings.nats_url` the outbox relay starts publishing in the
    background (call from a running event loop). `memory_retry`: awaited between reconnections of the
    memory's listener (tests step it)."""
    transactions = Transactions(engine)
    outbox = Outbox(tables.outbox, events.SERVICE, events.PARTITIONS, clock)
    read_pool = ReadPool(asyncpg_dsn(settings.database_url), size=settings.db_read_pool_size)
    db = CatalogDatabase(transactions, outbox, read_pool)
    low = settings.stock_low_threshold
    memory = NotifiedMemory(
        engine, asyncpg_dsn(settings.database_url), lease_seconds=settings.memory_lease_seconds,
        **({"retry": memory_retry} if memory_retry else {}),
    )
    reservations = Reservations(
        db, clock, reservation_reply, default_ttl_seconds=settings.default_reservation_ttl_seconds,
        stock_low_threshold=low,
    )
    api = CatalogApi(
        transactions, Items(db, clock, stock_low_threshold=low), Campaigns(db, clock), Quotes(db, memory, clock),
        reservations, max_ttl_seconds=settings.max_reservation_ttl_seconds, memory=memory,
    )
    return Wiring(reservations, service_spec(api), memory, start_relays(engine, settings, outbox), read_pool)


@dataclass
class StartedCatalog:
    """An in-process catalog server (tests, other services' test helpers): `port`, its `engine`, and
    its reservation use cases (`reservations.expire_due()` steps the sweeper)."""

    server: RunningServer
    engine: AsyncEngine
    wiring: Wiring

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def reservations(self) -> Reservations:
        return self.wiring.reservations

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.wiring.close()
        await self.engine.dispose()


async def start(
    settings: CatalogSettings, *, clock: Clock | None = None, run_sweeper: bool = True,
    memory_retry: Retry | None = None,
) -> StartedCatalog:
    """Migrate, build and serve; the sweeper runs in the background unless disabled, the memory's
    listener always (`memory_retry`: see `build`)."""
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    wiring = build(settings, engine, clock or SystemClock(settings.clock_offset_seconds), memory_retry)
    running = await create_server(settings, wiring.spec)
    await running.set_serving(True)
    running.run_in_background([wiring.memory.follow])
    if run_sweeper:
        running.run_in_background([wiring.reservations.sweeper(settings.sweep_interval_seconds)])
    return StartedCatalog(running, engine, wiring)


async def serve(settings: CatalogSettings) -> None:
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    wiring = build(settings, engine, SystemClock(settings.clock_offset_seconds))
    try:
        await run_service(
            settings, wiring.spec, engine,
            [wiring.memory.follow, wiring.reservations.sweeper(settings.sweep_interval_seconds)],
            on_stop=[wiring.close],  # after the drain, before the engine closes: the relay marks its last pass
        )
    finally:
        await wiring.close()  # a second close is a no-op; this one covers a failed start


def main() -> None:
    settings = settings_or_exit(CatalogSettings)
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    run_process(serve(settings))
