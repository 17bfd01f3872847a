"""Composition root: settings -> migrations -> engine -> peers -> use cases -> servicer -> server.

`start` runs a real redemption server in-process (tests); `main` is `python -m redemption`.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.client import bearer, open_channel
from points_platform.clock import Clock, SystemClock
from points_platform.config import settings_or_exit
from points_platform.db import create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.outbox import Outbox
from points_platform.relay import RelayJob, start_relays
from points_platform.server import RunningServer, ServiceSpec, create_server, run_process, run_service
from points_platform.unit_of_work import Transactions
from redemption.api import RedemptionApi, service_spec
from redemption.config import RedemptionSettings
from redemption.peers.catalog import CatalogClient
from redemption.peers.wallet import WalletClient
from redemption.store import tables
from redemption.store.entitlements import EntitlementStore
from redemption.store.events import PARTITIONS, SERVICE, RedemptionEvents
from redemption.store.sagas import SagaStore
from redemption.use_cases.redemptions import RedemptionService

MIGRATIONS = Path(__file__).parent / "migrations"
CALLER = "redemption"


@dataclass
class Wiring:
    """The wired service: its use cases, its servicer's spec, the channels it holds, its domain events."""

    service: RedemptionService
    spec: ServiceSpec
    channels: list[grpc.aio.Channel]
    events: RedemptionEvents
    relays: RelayJob | None = None

    def start_relays(self, engine: AsyncEngine, settings: RedemptionSettings) -> RelayJob:
        """Publish the outbox in the background (nothing runs without a NATS URL); the stores wake it."""
        self.relays = relays = start_relays(engine, settings, self.events.outbox)
        self.events.wake = relays.wake
        return relays

    async def close_relays(self) -> None:
        """Finish the relay's pass under way (once; before the engine closes)."""
        relays, self.relays = self.relays, None
        if relays is not None:
            await relays.close()

    async def close(self) -> None:
        await self.service.stop()
        await self.close_relays()  # after the sagas stopped writing: its last pass publishes their events
        for channel in self.channels:
            await channel.close()


def build(settings: RedemptionSettings, engine: AsyncEngine, clock: Clock) -> Wiring:
    """Wire the peers, the repositories, the use cases and the servicer (no I/O yet)."""
    token = settings.load_tokens().get(CALLER, "")
    metadata = bearer(token)
    wallet_channel = open_channel(settings.wallet_target, settings)
    catalog_channel = open_channel(settings.catalog_target, settings)
    transactions = Transactions(engine)
    events = RedemptionEvents(Outbox(tables.outbox, SERVICE, PARTITIONS, clock))
    service = RedemptionService(
        transactions, SagaStore(transactions, events), EntitlementStore(engine, events),
        WalletClient(wallet_channel, metadata, settings.peer_timeout_seconds),
        CatalogClient(catalog_channel, metadata, settings.peer_timeout_seconds),
        clock, settings,
    )
    return Wiring(service, service_spec(RedemptionApi(service)), [wallet_channel, catalog_channel], events)


@dataclass
class StartedRedemption:
    """A redemption server on loopback: `port`, its `engine`, its use cases (`service.recover_once()`)."""

    server: RunningServer
    engine: AsyncEngine
    wiring: Wiring

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def service(self) -> RedemptionService:
        return self.wiring.service

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.wiring.close()
        await self.engine.dispose()


async def start(settings: RedemptionSettings, *, clock: Clock | None = None,
                recovery: bool = True) -> StartedRedemption:
    """Migrate, wire and serve (port 0 picks a free one). Call `.stop()`."""
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    wiring = build(settings, engine, clock or SystemClock(settings.clock_offset_seconds))
    wiring.start_relays(engine, settings)
    server = await create_server(settings, wiring.spec)
    server.watch_database(engine, settings.health_check_interval_seconds)
    if recovery:
        server.run_in_background([wiring.service.recovery_loop])
    return StartedRedemption(server, engine, wiring)


async def serve(settings: RedemptionSettings) -> None:
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    wiring = build(settings, engine, SystemClock(settings.clock_offset_seconds))
    wiring.start_relays(engine, settings)
    try:
        await run_service(settings, wiring.spec, engine, background=[wiring.service.recovery_loop],
                          on_stop=[wiring.close_relays])
    finally:
        await wiring.close()


def main() -> None:
    settings = settings_or_exit(RedemptionSettings)
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    run_process(serve(settings))
