"""Composition root: settings -> migrations -> engine -> use cases -> servicer -> server.

`start` is what tests (ours and the other services') use to run a real wallet in-process;
`main` is the process entry (`python -m wallet`), sharing the same wiring.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.clock import Clock, SystemClock
from points_platform.config import settings_or_exit
from points_platform.db import create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.server import RunningServer, ServiceSpec, create_server, run_process, run_service
from wallet.api import WalletApi, service_spec
from wallet.config import WalletSettings
from wallet.use_cases import Wallet

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: WalletSettings, engine: AsyncEngine, clock: Clock) -> tuple[Wallet, ServiceSpec]:
    wallet = Wallet(engine, clock, settings)
    return wallet, service_spec(WalletApi(wallet))


def background_jobs(wallet: Wallet) -> list[Callable[[], Awaitable[None]]]:
    """The hold sweeper, and the points expiry job when expiry is on."""
    jobs: list[Callable[[], Awaitable[None]]] = [wallet.run_sweeper]
    if wallet.points_expiry_enabled:
        jobs.append(wallet.run_expiry)
    return jobs


@dataclass
class StartedWallet:
    """A wallet serving on loopback: `port`, its `engine` (for checks), its use cases."""

    server: RunningServer
    engine: AsyncEngine
    wallet: Wallet

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.wallet.committer.drain()
        await self.engine.dispose()


async def start(settings: WalletSettings, *, clock: Clock | None = None, sweeper: bool = True) -> StartedWallet:
    """Migrate, wire and serve (port from settings; 0 picks a free one). Call `.stop()`."""
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, custom_plans=True)
    wallet, spec = build(settings, engine, clock or SystemClock(settings.clock_offset_seconds))
    server = await create_server(settings, spec)
    server.watch_database(engine, settings.health_check_interval_seconds)
    if sweeper:
        server.run_in_background(background_jobs(wallet))
    return StartedWallet(server, engine, wallet)


async def serve(settings: WalletSettings) -> None:
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, custom_plans=True)
    wallet, spec = build(settings, engine, SystemClock(settings.clock_offset_seconds))
    await run_service(settings, spec, engine, background=background_jobs(wallet))


def main() -> None:
    settings = settings_or_exit(WalletSettings)
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    run_process(serve(settings))
