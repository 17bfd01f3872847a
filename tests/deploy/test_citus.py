"""deploy/citus/*.sql against the migrated schemas (issue 15; not runnable here: no Citus): every
table is placed — distributed by its distribution column, co-located with its service's anchor
table, or a reference table — and every key of a distributed table contains the distribution column
(which Citus requires). Tables on a service's NOT_YET list must be absent (commented out)."""

from __future__ import annotations

import re
from pathlib import Path

from earning.main import MIGRATIONS as EARNING_MIGRATIONS
from tests.conftest import NewDatabase
from tests.earning import test_schema_keys as earning_keys
from tests.support.schema import Schema, migrated_schema
from tests.wallet import test_schema_keys as wallet_keys
from wallet.main import MIGRATIONS as WALLET_MIGRATIONS

CITUS = Path(__file__).resolve().parents[2] / "deploy" / "citus"

_CALL = re.compile(
    r"^SELECT (create_distributed_table|create_reference_table)\('(\w+)'(?:, '(\w+)')?"
    r"(?:, colocate_with => '(\w+)')?\);$"
)


def placements(sql: str) -> dict[str, tuple[str, str | None, str | None]]:
    """table -> (function, distribution column, colocate_with), from the uncommented statements."""
    found: dict[str, tuple[str, str | None, str | None]] = {}
    for line in sql.splitlines():
        line = line.strip()
        if not line or line.startswith("--"):
            continue
        m = _CALL.match(line)
        assert m, f"not a placement statement: {line}"
        function, table, column, colocate = m.groups()
        assert table not in found, f"{table} placed twice"
        found[table] = (function, column, colocate)
    return found


def check(schema: Schema, placed: dict[str, tuple[str, str | None, str | None]], anchor: str,
          local: set[str], not_yet: set[str], by_column: dict[str, str]) -> None:
    assert set(placed) | local | not_yet == schema.tables, (schema.tables - set(placed) - local - not_yet,
                                                             set(placed) - schema.tables)
    assert not set(placed) & (local | not_yet)
    assert placed[anchor] == ("create_distributed_table", "user_id", None)
    for table, (function, column, colocate) in placed.items():
        if function == "create_reference_table":
            continue
        want = by_column.get(table, "user_id")
        assert column == want, f"{table} distributed by {column}, not {want}"
        if want == "user_id" and table != anchor:
            assert colocate == anchor, f"{table} not co-located with {anchor}"
        assert column in schema.columns[table]
        assert schema.keys_lacking({table}, column) == {}, f"{table} has a key without {column}"


async def test_wallet_sql_distributes_every_table_by_user(new_database: NewDatabase) -> None:
    schema = await migrated_schema(new_database, "wallet_citus", WALLET_MIGRATIONS)
    placed = placements((CITUS / "wallet.sql").read_text())
    assert not wallet_keys.NOT_YET
    assert all(p[0] == "create_distributed_table" for p in placed.values())  # the wallet has no global table
    check(schema, placed, "accounts", set(wallet_keys.REFERENCE), set(), {})


async def test_earning_sql_places_every_ready_table(new_database: NewDatabase) -> None:
    schema = await migrated_schema(new_database, "earning_citus", EARNING_MIGRATIONS)
    placed = placements((CITUS / "earning.sql").read_text())
    references = {t for t, p in placed.items() if p[0] == "create_reference_table"}
    assert references == set(earning_keys.REFERENCE) - {"alembic_version"}
    check(schema, placed, "user_state", {"alembic_version"} | set(earning_keys.LOCAL), set(earning_keys.NOT_YET),
          dict.fromkeys(earning_keys.BY_DEVICE, "device_id"))
