"""Every per-user wallet table is keyed by user_id (issue 15: the distribution column of a sharded
wallet, docs/scaling.md): its primary key and every unique constraint or unique index include
`user_id`, read from the migrated schema itself (pg_catalog), so a new table or key cannot slip by."""

from __future__ import annotations

from sqlalchemy import text

from tests.wallet.conftest import Client

# Tables that are not per user (a distributed layout keeps them as reference tables or leaves them out).
REFERENCE = {
    "alembic_version": "migration bookkeeping",
    "outbox": "domain events keyed by their publish sequence; each shard would keep and relay its own",
}

# Per-user tables whose keys do not carry user_id yet. The list only shrinks: a table converted is
# taken off it (the test fails while a table on it is already keyed by user_id).
NOT_YET = {
    "transactions": "primary key transaction_id; reads by id (gift history, refunds) must name the user first",
    "postings": "primary key posting_id, and system legs are filed under user_id '' (one shard for every credit)",
    "holds": "primary key hold_id: CommitHold/ReleaseHold/RefundHold carry only the id, which does not name its user",
    "payouts": "primary key payout_id, user column creator_id: CompletePayout carries only the id",
}

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


async def test_every_per_user_key_includes_user_id(wallet: Client) -> None:
    async with wallet.engine.connect() as conn:
        tables = set(
            (await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars()
        )
        keys = (await conn.execute(text(_KEYS))).all()
        with_user = set((await conn.execute(text(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'user_id'"
        ))).scalars())
    assert set(REFERENCE) <= tables and set(NOT_YET) <= tables  # the lists name real tables
    per_user = tables - set(REFERENCE)
    keyed = {table for table, _, _ in keys}
    assert per_user <= keyed, f"tables without a primary key: {per_user - keyed}"
    lacking: dict[str, list[str]] = {}
    for table, name, columns in keys:
        if table in per_user and "user_id" not in columns:
            lacking.setdefault(table, []).append(f"{name}{tuple(columns)}")
    assert set(lacking) - set(NOT_YET) == set(), {t: lacking[t] for t in set(lacking) - set(NOT_YET)}
    converted = set(NOT_YET) - set(lacking)
    assert converted == set(), f"keyed by user_id now: take them off NOT_YET: {converted}"
    assert per_user - set(NOT_YET) <= with_user
