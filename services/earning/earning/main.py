"""Composition root: settings -> migrations -> engine -> peers -> use cases -> servicer -> server.

`start` runs a real earning server in-process (tests); `main` is the process entry
(`python -m earning`), sharing the same wiring.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from earning.api import EarningApi, service_spec
from earning.config import EarningSettings
from earning.peers.wallet import WalletCredits
from earning.store import tables
from earning.store.database import Database
from earning.store.events import PARTITIONS, SERVICE, EarningEvents
from earning.use_cases.admin import Administration
from earning.use_cases.crediting import Crediting
from earning.use_cases.preview import Previewer
from earning.use_cases.recording import Recorder
from earning.use_cases.rulebook import RuleBook
from points_platform.client import open_channel
from points_platform.clock import Clock, SystemClock
from points_platform.config import settings_or_exit
from points_platform.db import create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.outbox import Outbox
from points_platform.relay import RelayJob, start_relays
from points_platform.server import RunningServer, ServiceSpec, create_server, run_process, run_service
from points_platform.unit_of_work import Transactions

MIGRATIONS = Path(__file__).parent / "migrations"
CALLER = "earning"


@dataclass
class Wiring:
    """The wired service: its use cases, its servicer's spec and the channel it holds."""

    crediting: Crediting
    recorder: Recorder
    spec: ServiceSpec
    wallet_channel: grpc.aio.Channel
    events: EarningEvents
    relays: RelayJob | None = None

    def start_relays(self, engine: AsyncEngine, settings: EarningSettings) -> RelayJob:
        """Publish the events outbox in the background (nothing runs without a NATS URL); a commit
        that appended events wakes it."""
        self.relays = relays = start_relays(engine, settings, self.events.outbox)
        self.events.wake = relays.wake
        return relays

    async def close(self) -> None:
        await self.recorder.drain()
        # after the last batches committed: the relay's last pass publishes their events
        relays, self.relays = self.relays, None
        if relays is not None:
            await relays.close()
        await self.wallet_channel.close()


def _events(clock: Clock) -> EarningEvents:
    return EarningEvents(Outbox(tables.outbox, SERVICE, PARTITIONS, clock))


def build(settings: EarningSettings, engine: AsyncEngine, clock: Clock) -> Wiring:
    """Wire the use cases and the servicer (no I/O yet: `open_database` seeds the rules)."""
    events = _events(clock)
    database = Database(Transactions(engine), events)
    channel = open_channel(settings.wallet_target, settings, max_reconnect_backoff_ms=2000)
    wallet = WalletCredits(channel, settings.load_tokens().get(CALLER, ""), settings.wallet_timeout_seconds)
    rules = RuleBook(database)
    crediting = Crediting(
        database, wallet, clock,
        min_age_seconds=settings.reconcile_min_age_seconds, interval_seconds=settings.reconcile_interval_seconds,
        wallet_error_limit=settings.wallet_error_limit, suspended_retry_seconds=settings.suspended_retry_seconds,
    )
    recorder = Recorder(database, clock, rules, crediting)
    api = EarningApi(recorder, Administration(database, clock, rules, crediting), Previewer(database, clock, rules))
    spec = service_spec(api)
    return Wiring(crediting, recorder, spec, channel, events)


async def open_database(settings: EarningSettings, clock: Clock) -> AsyncEngine:
    """Migrate, then seed the rules (version 1 from the rules file, unless rules exist)."""
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, custom_plans=True)
    await RuleBook(Database(Transactions(engine), _events(clock))).seed(Path(settings.rules_file), clock.now())
    return engine


@dataclass
class StartedEarning:
    """An earning server on loopback: `port`, its `engine`, its use cases (`wiring`)."""

    server: RunningServer
    engine: AsyncEngine
    wiring: Wiring

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.wiring.close()
        await self.engine.dispose()


async def start(settings: EarningSettings, *, clock: Clock | None = None, reconcile: bool = True) -> StartedEarning:
    """Migrate, wire and serve (port from settings; 0 picks a free one). Call `.stop()`."""
    clock = clock or SystemClock(settings.clock_offset_seconds)
    engine = await open_database(settings, clock)
    wiring = build(settings, engine, clock)
    wiring.start_relays(engine, settings)
    server = await create_server(settings, wiring.spec)
    server.watch_database(engine, settings.health_check_interval_seconds)
    if reconcile:
        server.run_in_background([wiring.crediting.run_reconciliation])
    return StartedEarning(server, engine, wiring)


async def serve(settings: EarningSettings) -> None:
    clock = SystemClock(settings.clock_offset_seconds)
    engine = await open_database(settings, clock)
    wiring = build(settings, engine, clock)
    wiring.start_relays(engine, settings)
    try:
        # wiring.close drains the batches and stops the relay before the engine closes
        await run_service(settings, wiring.spec, engine, background=[wiring.crediting.run_reconciliation],
                          on_stop=[wiring.close])
    finally:
        await wiring.close()


def main() -> None:
    settings = settings_or_exit(EarningSettings)
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    run_process(serve(settings))
