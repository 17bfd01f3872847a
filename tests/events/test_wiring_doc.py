"""The outbox migration docs/events.md gives services ("Wiring a service") creates exactly the
table `outbox_table` describes: same columns, identity, constraints and partial indexes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from points_platform.db import create_engine, migrate
from points_platform.migrations import create_outbox_table_v1
from points_platform.outbox import outbox_table
from tests.conftest import NewDatabase

EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def documented_migration() -> str:
    blocks = re.findall(r"```python\n(.*?)```", EVENTS_DOC.read_text(), flags=re.DOTALL)
    [migration] = [block for block in blocks if block.lstrip().startswith("def upgrade()")]
    # The block is indented under a list item in the markdown.
    indent = len(migration) - len(migration.lstrip(" "))
    return "\n".join(line[indent:] for line in migration.splitlines())


def run_documented_migration(conn: Connection) -> None:
    namespace: dict[str, Any] = {"op": Operations(MigrationContext.configure(conn)), "sa": sa,
                                 "create_outbox_table_v1": create_outbox_table_v1}
    exec(documented_migration(), namespace)
    namespace["upgrade"]()


def create_from_the_library(conn: Connection) -> None:
    metadata = sa.MetaData()
    outbox_table(metadata)
    metadata.create_all(conn)


async def schema(url: str, create: Any) -> tuple[list[Any], list[Any], list[Any]]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(create)
            columns = (await conn.execute(sa.text(
                "SELECT column_name, data_type, is_nullable, is_identity, identity_generation "
                "FROM information_schema.columns WHERE table_name = 'outbox' ORDER BY ordinal_position"
            ))).all()  # fmt: skip
            indexes = (await conn.execute(sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'outbox' ORDER BY indexname"
            ))).all()  # fmt: skip
            constraints = (await conn.execute(sa.text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'outbox'::regclass ORDER BY conname"
            ))).all()  # fmt: skip
    finally:
        await engine.dispose()
    return [tuple(r) for r in columns], [tuple(r) for r in indexes], [tuple(r) for r in constraints]


async def test_the_documented_migration_creates_the_librarys_outbox_table(new_database: NewDatabase) -> None:
    documented = await schema(await new_database("outbox_doc"), run_documented_migration)
    library = await schema(await new_database("outbox_lib"), create_from_the_library)
    columns, indexes, _ = library
    assert len(columns) == 7 and {name for name, _ in indexes} >= {"outbox_unpublished", "outbox_published"}
    assert documented == library


async def migrated_outbox_is_the_librarys(new_database: NewDatabase, migrations: Path) -> bool:
    """Whether a service's migrations create exactly the library's outbox table."""
    migrated = await new_database("service_outbox")
    await migrate(migrated, migrations)
    return await schema(migrated, lambda _conn: None) == await schema(await new_database("outbox_lib"),
                                                                      create_from_the_library)
