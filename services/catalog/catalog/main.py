"""Composition root: settings -> migrations -> engine -> use cases -> servicer -> server."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.api import CatalogApi, service_spec
from catalog.config import CatalogSettings
from catalog.use_cases import Catalog
from points_platform.clock import Clock, SystemClock
from points_platform.config import settings_or_exit
from points_platform.db import create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.server import RunningServer, create_server, run_process, run_service

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: CatalogSettings, engine: AsyncEngine, clock: Clock) -> tuple[Catalog, CatalogApi]:
    catalog = Catalog(engine, clock, default_ttl_seconds=settings.default_reservation_ttl_seconds)
    return catalog, CatalogApi(catalog, max_ttl_seconds=settings.max_reservation_ttl_seconds)


@dataclass
class StartedCatalog:
    """An in-process catalog server (tests, other services' test helpers)."""

    server: RunningServer
    engine: AsyncEngine
    catalog: Catalog

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.engine.dispose()


async def start(
    settings: CatalogSettings, *, clock: Clock | None = None, run_sweeper: bool = True
) -> StartedCatalog:
    """Migrate, build and serve; the sweeper runs in the background unless disabled."""
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    catalog, api = build(settings, engine, clock or SystemClock(settings.clock_offset_seconds))
    running = await create_server(settings, service_spec(api))
    await running.set_serving(True)
    if run_sweeper:
        running.run_in_background([catalog.sweeper(settings.sweep_interval_seconds)])
    return StartedCatalog(running, engine, catalog)


async def serve(settings: CatalogSettings) -> None:
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    catalog, api = build(settings, engine, SystemClock(settings.clock_offset_seconds))
    await run_service(settings, service_spec(api), engine, [catalog.sweeper(settings.sweep_interval_seconds)])


def main() -> None:
    settings = settings_or_exit(CatalogSettings)
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    run_process(serve(settings))
