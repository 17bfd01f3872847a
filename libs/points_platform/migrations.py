"""The body of every service's alembic env.py (async engine, advisory lock, online mode only), and
the frozen, versioned table helpers every service's migrations call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Serializes concurrent migrators (replicas starting together) on one database.
_MIGRATION_LOCK_KEY = 7_316_417_001


def run_env(target_metadata: MetaData | None) -> None:
    """Called from a service's migrations/env.py."""
    url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database_url given to alembic")

    def do_run(connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            connection.commit()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(do_run)
        finally:
            await engine.dispose()

    asyncio.run(run_async())


# Tables every service creates from one definition. A migration is a snapshot: it calls a versioned
# helper below, never the runtime definitions (`idempotency.idempotency_table`,
# `outbox.outbox_table`, which take the columns of the version in use), and a helper never changes
# once released; a new shape is a `_v2` helper and a new migration.
# tests/platform/test_migrated_schema.py checks that each service's migrated database is what its
# `store/tables.py` metadata (and so the runtime definitions) describes.

# alembic's `op` inside a migration (a module proxying the running Operations), or an Operations.
Ops = Any


def idempotency_columns_v1() -> list[sa.Column[Any]]:
    """The idempotency table's columns (fresh objects each call: a Column belongs to one Table)."""
    return [
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("reply", sa.LargeBinary, nullable=False),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
    ]


def outbox_columns_v1() -> list[sa.Column[Any]]:
    """The outbox's columns: `sequence` is the publish order within a partition."""
    return [
        sa.Column("sequence", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("partition", sa.SmallInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_time", sa.DateTime(timezone=True)),
    ]


def create_idempotency_table_v1(op: Ops, name: str = "idempotency") -> sa.Table:
    """Create the platform's idempotency table (key `(user_id, request_id)`, reply as proto bytes)."""
    table: sa.Table = op.create_table(name, *idempotency_columns_v1())
    return table


CarryRows = Callable[[Connection, str, sa.Table], None]


def replace_idempotency_table_v1(op: Ops, carry: CarryRows, name: str = "idempotency") -> None:
    """Replace a service's own idempotency table with the platform's: the old one is renamed aside
    (its primary key too, so the new one can take the name), the new one created, `carry(bind,
    old_name, new_table)` moves the old rows over, and the old table is dropped."""
    old = f"{name}_old"
    op.rename_table(name, old)
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {name}_pkey TO {old}_pkey")
    new = create_idempotency_table_v1(op, name)
    carry(op.get_bind(), old, new)
    op.drop_table(old)


def create_outbox_table_v1(op: Ops, name: str = "outbox") -> sa.Table:
    """Create the transactional outbox (points_platform.outbox); the partial indexes keep the relay's
    scan over unpublished rows and the pruning over published ones."""
    table: sa.Table = op.create_table(name, *outbox_columns_v1())
    op.create_index(f"{name}_unpublished", name, ["partition", "sequence"],
                    postgresql_where=sa.text("published_time IS NULL"))
    op.create_index(f"{name}_published", name, ["published_time"],
                    postgresql_where=sa.text("published_time IS NOT NULL"))
    return table


def restore_service_idempotency_table_v0(op: Ops, method: sa.types.TypeEngine[Any], *, key_has_method: bool,
                                         response_nullable: bool = False) -> None:
    """The downgrade of a migration that replaced a service's own idempotency table with the
    platform's (catalog 0006, earning 0010, redemption 0004): the shared table dropped, the old shape
    created empty (its fingerprints cannot be derived back: a retried request is judged afresh)."""
    op.drop_table("idempotency")
    op.create_table(
        "idempotency",
        sa.Column("method", method, primary_key=key_has_method, nullable=False),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=response_nullable),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
