"""Composition root: settings -> migrations -> engine -> use cases -> servicer -> server.

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
from earning.use_cases.admin import Administration
from earning.use_cases.crediting import Crediting
from earning.use_cases.preview import Previewer
from earning.use_cases.recording import Recorder
from earning.use_cases.rulebook import RuleBook
from earning.wallet_client import WalletCredits
from points_platform.client import open_channel
from points_platform.clock import Clock, SystemClock
from points_platform.config import settings_or_exit
from points_platform.db import create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.server import RunningServer, ServiceSpec, create_server, run_process, run_service

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Earning:
    """The wired service: use cases plus the resources they hold."""

    engine: AsyncEngine
    wallet_channel: grpc.aio.Channel
    rules: RuleBook
    crediting: Crediting
    recorder: Recorder
    administration: Administration
    spec: ServiceSpec

    async def close(self) -> None:
        await self.recorder.drain()
        await self.wallet_channel.close()
        await self.engine.dispose()


async def build(settings: EarningSettings, clock: Clock) -> Earning:
    """Migrate, seed the rules, wire the use cases (no server yet)."""
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, custom_plans=True)
    channel = open_channel(settings.wallet_target, settings, max_reconnect_backoff_ms=2000)
    token = settings.load_tokens().get("earning", "")
    wallet = WalletCredits(channel, token, settings.wallet_timeout_seconds)
    rules = RuleBook(engine)
    await rules.seed(Path(settings.rules_file), clock.now())
    crediting = Crediting(
        engine, wallet, clock,
        min_age_seconds=settings.reconcile_min_age_seconds, interval_seconds=settings.reconcile_interval_seconds,
        wallet_error_limit=settings.wallet_error_limit, suspended_retry_seconds=settings.suspended_retry_seconds,
    )
    recorder = Recorder(engine, clock, rules, crediting)
    administration = Administration(engine, clock, rules, crediting)
    spec = service_spec(EarningApi(recorder, administration, Previewer(engine, clock, rules)))
    return Earning(engine, channel, rules, crediting, recorder, administration, spec)


@dataclass
class StartedEarning:
    server: RunningServer
    earning: Earning

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def engine(self) -> AsyncEngine:
        return self.earning.engine

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.earning.close()


async def start(settings: EarningSettings, *, clock: Clock | None = None, reconcile: bool = True) -> StartedEarning:
    """Serve in-process (port from settings; 0 picks a free one). Call `.stop()`."""
    earning = await build(settings, clock or SystemClock(settings.clock_offset_seconds))
    server = await create_server(settings, earning.spec)
    server.watch_database(earning.engine, settings.health_check_interval_seconds)
    if reconcile:
        server.run_in_background([earning.crediting.run_reconciliation])
    return StartedEarning(server, earning)


async def serve(settings: EarningSettings) -> None:
    earning = await build(settings, SystemClock(settings.clock_offset_seconds))
    try:
        await run_service(settings, earning.spec, earning.engine, background=[earning.crediting.run_reconciliation])
    finally:
        await earning.recorder.drain()
        await earning.wallet_channel.close()


def main() -> None:
    settings = settings_or_exit(EarningSettings)
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    run_process(serve(settings))
