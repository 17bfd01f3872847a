"""Composition root: settings -> migrations -> engine -> repositories -> use cases -> servicer -> server.

`start` is what tests (ours and the other services') use to run a real wallet in-process;
`main` is the process entry (`python -m wallet`), sharing the same wiring.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.clock import Clock, SystemClock
from points_platform.config import settings_or_exit
from points_platform.db import asyncpg_dsn, create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.outbox import Outbox
from points_platform.read_pool import ReadPool
from points_platform.relay import RelayJob, start_relays
from points_platform.server import RunningServer, ServiceSpec, create_server, run_process, run_service
from points_platform.unit_of_work import Transactions
from wallet.api import WalletApi, service_spec
from wallet.config import WalletSettings
from wallet.store import tables
from wallet.store.events import PARTITIONS, SERVICE
from wallet.store.repositories import (
    PostgresHistory,
    PostgresHolds,
    PostgresLedger,
    PostgresLots,
    PostgresPayouts,
    PostgresStanding,
)
from wallet.use_cases import Wallet
from wallet.use_cases.expiry import Expiry
from wallet.use_cases.history import History
from wallet.use_cases.holds import Holds
from wallet.use_cases.ledger import Ledger
from wallet.use_cases.payouts import Payouts
from wallet.use_cases.standing import Standing

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Wiring:
    wallet: Wallet
    spec: ServiceSpec
    read_pool: ReadPool
    outbox: Outbox
    relays: RelayJob | None = None

    def start_relays(self, engine: AsyncEngine, settings: WalletSettings) -> None:
        """Publish the outbox in the background (nothing runs without a NATS URL)."""
        self.relays = start_relays(engine, settings, self.outbox)

    async def close(self) -> None:
        """Answer what the group committer still holds (the server has stopped taking calls), let
        the relay's pass under way publish what they committed (before the engine closes), then
        close the read pool."""
        await self.wallet.ledger.committer.drain()
        relays, self.relays = self.relays, None
        if relays is not None:
            await relays.close()
        await self.read_pool.close()


def build(settings: WalletSettings, engine: AsyncEngine, clock: Clock) -> Wiring:
    # Points expiry off: no lots are kept, and the ledger batch does no lot work at all.
    points_ttl = timedelta(days=settings.points_expiry_days) if settings.points_expiry_days > 0 else None
    transactions = Transactions(engine)
    read_pool = ReadPool(asyncpg_dsn(settings.database_url), size=settings.db_read_pool_size)
    ledger = Ledger(PostgresLedger(transactions, points_ttl), clock, settings)
    wallet = Wallet(
        ledger=ledger,
        holds=Holds(PostgresHolds(transactions, points_ttl), clock, settings),
        payouts=Payouts(PostgresPayouts(transactions), clock, settings),
        standing=Standing(PostgresStanding(transactions), clock, ledger.submit),
        expiry=Expiry(PostgresLots(transactions), clock, settings),
        history=History(PostgresHistory(transactions, read_pool)),
    )
    return Wiring(wallet, service_spec(WalletApi(wallet)), read_pool, Outbox(tables.outbox, SERVICE, PARTITIONS, clock))


@dataclass
class StartedWallet:
    """A wallet serving on loopback: `port`, its `engine` (for checks), its use cases (`wallet`)."""

    server: RunningServer
    engine: AsyncEngine
    wiring: Wiring
    settings: WalletSettings

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def wallet(self) -> Wallet:
        return self.wiring.wallet

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.wiring.close()
        await self.engine.dispose()


async def start(settings: WalletSettings, *, clock: Clock | None = None, sweeper: bool = True) -> StartedWallet:
    """Migrate, wire and serve (port from settings; 0 picks a free one). Call `.stop()`."""
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, custom_plans=True)
    wiring = build(settings, engine, clock or SystemClock(settings.clock_offset_seconds))
    wiring.start_relays(engine, settings)
    server = await create_server(settings, wiring.spec)
    server.watch_database(engine, settings.health_check_interval_seconds)
    if sweeper:
        server.run_in_background(wiring.wallet.background_jobs())
    return StartedWallet(server, engine, wiring, settings)


async def serve(settings: WalletSettings) -> None:
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, custom_plans=True)
    wiring = build(settings, engine, SystemClock(settings.clock_offset_seconds))
    wiring.start_relays(engine, settings)
    try:
        await run_service(settings, wiring.spec, engine, background=wiring.wallet.background_jobs(),
                          on_stop=[wiring.close])
    finally:
        await wiring.close()


def main() -> None:
    settings = settings_or_exit(WalletSettings)
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    run_process(serve(settings))
