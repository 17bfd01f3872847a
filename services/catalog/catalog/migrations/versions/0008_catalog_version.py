"""A catalog-wide version, bumped and announced in the transaction of every change (docs/catalog.md, Reads from memory).

`catalog_version` holds one row. Triggers bump it and `NOTIFY catalog_changed, '<version>'` on every
write to `campaigns` and `campaign_items` and on every write to `items` other than the stock counters
reservations move (`stock_available`, `stock_reserved`, `stock_sold`): triggers rather than calls in
the use cases, so no writer (a use case added later, the seed, an operator's SQL) can change what a
process keeps in memory without telling it. The notification is sent at commit, with the change.

`catalog_readers` has one row per process serving reads from memory: the highest version it has
dropped its memory for (`seen_version`) and its lease. A change is acknowledged to its caller only
once every reader with a live lease has seen its version.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BUMP = """
CREATE FUNCTION catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bumped bigint;
BEGIN
  UPDATE catalog_version SET version = version + 1 WHERE id = 1 RETURNING version INTO bumped;
  PERFORM pg_notify('catalog_changed', bumped::text);
  RETURN NULL;
END
$$
"""

# Every column but the counters a reservation moves: a column added later is covered too.
_SPEC_CHANGED = (
    "(to_jsonb(OLD) - 'stock_available' - 'stock_reserved' - 'stock_sold')"
    " IS DISTINCT FROM (to_jsonb(NEW) - 'stock_available' - 'stock_reserved' - 'stock_sold')"
)


def upgrade() -> None:
    op.execute(
        "CREATE TABLE catalog_version (id smallint PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)"
    )
    op.execute("INSERT INTO catalog_version (id, version) VALUES (1, 1)")
    op.execute(
        "CREATE TABLE catalog_readers (reader_id text PRIMARY KEY, seen_version bigint NOT NULL,"
        " lease_until timestamptz NOT NULL)"
    )
    op.execute(_BUMP)
    op.execute(
        "CREATE TRIGGER items_written AFTER INSERT OR DELETE OR TRUNCATE ON items"
        " FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed()"
    )
    op.execute(
        f"CREATE TRIGGER items_spec_changed AFTER UPDATE ON items FOR EACH ROW WHEN ({_SPEC_CHANGED})"
        " EXECUTE FUNCTION catalog_changed()"
    )
    for table in ("campaigns", "campaign_items"):
        op.execute(
            f"CREATE TRIGGER {table}_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed()"
        )


def downgrade() -> None:
    for table in ("campaigns", "campaign_items"):
        op.execute(f"DROP TRIGGER {table}_written ON {table}")
    op.execute("DROP TRIGGER items_spec_changed ON items")
    op.execute("DROP TRIGGER items_written ON items")
    op.execute("DROP FUNCTION catalog_changed()")
    op.execute("DROP TABLE catalog_readers")
    op.execute("DROP TABLE catalog_version")
