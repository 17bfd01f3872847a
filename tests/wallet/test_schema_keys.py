"""Every per-user wallet table is keyed by user_id (issue 15: the distribution column of a sharded
wallet, docs/scaling.md): its primary key and every unique constraint or unique index include
`user_id`, read from the migrated schema itself (pg_catalog), so a new table or key cannot slip by."""

from __future__ import annotations

from tests.support.schema import read_schema
from tests.wallet.conftest import Client

# Tables that are not per user (a distributed layout keeps them as reference tables or leaves them out).
REFERENCE = {
    "alembic_version": "migration bookkeeping",
    "outbox": "domain events keyed by their publish sequence; each shard would keep and relay its own",
}

# Per-user tables whose keys do not carry user_id yet: none since 0009 (transactions, postings,
# holds, payouts). A table added here must say why; the test fails while one on it is keyed by user_id.
NOT_YET: dict[str, str] = {}


async def test_every_per_user_key_includes_user_id(wallet: Client) -> None:
    schema = await read_schema(wallet.engine)
    assert set(REFERENCE) <= schema.tables and set(NOT_YET) <= schema.tables  # the lists name real tables
    per_user = schema.tables - set(REFERENCE)
    keyed = {table for table, _, _ in schema.keys}
    assert per_user <= keyed, f"tables without a primary key: {per_user - keyed}"
    lacking = schema.keys_lacking(per_user, "user_id")
    assert set(lacking) - set(NOT_YET) == set(), {t: lacking[t] for t in set(lacking) - set(NOT_YET)}
    converted = set(NOT_YET) - set(lacking)
    assert converted == set(), f"keyed by user_id now: take them off NOT_YET: {converted}"
    assert all("user_id" in schema.columns[t] for t in per_user - set(NOT_YET))
