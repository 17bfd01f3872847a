"""A service's database at a given alembic revision, for tests of what a migration carries over."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config


def alembic_config(url: str, migrations: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["database_url"] = url
    return config


async def upgrade_to(url: str, migrations: Path, revision: str) -> None:
    """Migrate the (existing) database at `url` up to `revision` (alembic runs its own loop: a thread)."""
    await asyncio.to_thread(command.upgrade, alembic_config(url, migrations), revision)
