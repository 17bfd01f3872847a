"""The keys of a migrated schema, read from pg_catalog (issue 15: the distribution column in every
key; tests/wallet/test_schema_keys.py, tests/earning/test_schema_keys.py, tests/deploy/test_citus.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.db import create_engine

# Primary keys and unique constraints, then unique indexes that back no constraint.
_KEYS = """
    SELECT c.relname AS table_name, con.conname AS key_name,
           array_agg(a.attname::text ORDER BY k.ord) AS columns
    FROM pg_constraint con
    JOIN pg_class c ON c.oid = con.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
    WHERE con.contype IN ('p', 'u')
    GROUP BY 1, 2
    UNION ALL
    SELECT c.relname, i.relname, array_agg(a.attname::text ORDER BY k.ord)
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
    WHERE x.indisunique AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid)
    GROUP BY 1, 2
"""


@dataclass(frozen=True)
class Schema:
    tables: set[str]
    keys: list[tuple[str, str, list[str]]]  # (table, key name, columns)
    columns: dict[str, set[str]]

    def keys_lacking(self, tables: set[str], column: str) -> dict[str, list[str]]:
        """The keys of `tables` that do not contain `column`, by table."""
        lacking: dict[str, list[str]] = {}
        for table, name, cols in self.keys:
            if table in tables and column not in cols:
                lacking.setdefault(table, []).append(f"{name}{tuple(cols)}")
        return lacking


async def read_schema(engine: AsyncEngine) -> Schema:
    async with engine.connect() as conn:
        listed = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        tables = set(listed.scalars())
        keys = [(t, n, list(c)) for t, n, c in (await conn.execute(text(_KEYS))).all()]
        columns: dict[str, set[str]] = {}
        for table, column in (await conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        ))).all():
            columns.setdefault(table, set()).add(column)
    return Schema(tables, keys, columns)


async def database_at(new_database: Callable[[str], Awaitable[str]], label: str, migrations: Path,
                      revision: str = "head") -> str:
    """A new database migrated to `revision` of a service's scripts (an upgrade test's old state)."""
    url = await new_database(label)
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["database_url"] = url
    await asyncio.to_thread(command.upgrade, config, revision)
    return url


async def migrated_schema(new_database: Callable[[str], Awaitable[str]], label: str, migrations: Path) -> Schema:
    """The schema of a new database migrated to head."""
    engine = create_engine(await database_at(new_database, label, migrations))
    try:
        return await read_schema(engine)
    finally:
        await engine.dispose()
