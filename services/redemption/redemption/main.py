"""Composition root: settings -> migrations -> engine -> servicer -> server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from points_platform.db import create_engine, migrate
from points_platform.logs import configure_logging
from points_platform.server import run_service

from redemption.api import RedemptionApi, service_spec
from redemption.config import RedemptionSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: RedemptionSettings) -> None:
    await migrate(settings.database_url, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    await run_service(settings, service_spec(RedemptionApi()), engine)


def main() -> None:
    settings = RedemptionSettings()
    configure_logging(settings.log_level)
    if "--migrate-only" in sys.argv:
        asyncio.run(migrate(settings.database_url, MIGRATIONS))
        return
    asyncio.run(serve(settings))
