"""Each service's migrations build the schema its code runs against: the migrated database of every
service matches its `store/tables.py` metadata (which holds the platform's runtime `idempotency_table`
and `outbox_table`), so the frozen helpers the migrations call (`points_platform.migrations`) and the
runtime definitions cannot drift apart unseen."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from points_platform.db import create_engine, migrate
from tests.conftest import NewDatabase
from tests.support.migrations import alembic_config


def differences(conn: Connection, metadata: Any) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata))


# The migrations that replaced a service's own idempotency table: stepped down below them and up again.
REPLACED_BY = {"wallet": "0006", "catalog": "0005", "earning": "0009", "redemption": "0003"}


def step(url: str, migrations: Path, down_to: str) -> None:
    config = alembic_config(url, migrations)
    command.downgrade(config, down_to)
    command.upgrade(config, "head")


@pytest.mark.parametrize("service", ["wallet", "catalog", "earning", "redemption"])
async def test_the_migrated_schema_is_the_services_tables(new_database: NewDatabase, service: str) -> None:
    """Migrated to the head, down below the platform idempotency migration and up again."""
    main = importlib.import_module(f"{service}.main")
    tables = importlib.import_module(f"{service}.store.tables")
    url = await new_database(f"schema_{service}")
    await migrate(url, main.MIGRATIONS)
    await asyncio.to_thread(step, url, main.MIGRATIONS, REPLACED_BY[service])
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(differences, tables.metadata)
            assert {"idempotency"} <= set(tables.metadata.tables)
    finally:
        await engine.dispose()
    assert found == []
