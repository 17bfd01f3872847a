"""Each service's migrations build the schema its code runs against: the migrated database of every
service matches its `store/tables.py` metadata (which holds the platform's runtime `idempotency_table`
and `outbox_table`), so the frozen helpers the migrations call (`points_platform.migrations`) and the
runtime definitions cannot drift apart unseen."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from points_platform.db import create_engine, migrate
from tests.conftest import NewDatabase


def differences(conn: Connection, metadata: Any) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("service", ["wallet", "catalog", "earning", "redemption"])
async def test_the_migrated_schema_is_the_services_tables(new_database: NewDatabase, service: str) -> None:
    main = importlib.import_module(f"{service}.main")
    tables = importlib.import_module(f"{service}.store.tables")
    url = await new_database(f"schema_{service}")
    await migrate(url, main.MIGRATIONS)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(differences, tables.metadata)
            assert {"idempotency"} <= set(tables.metadata.tables)
    finally:
        await engine.dispose()
    assert found == []
