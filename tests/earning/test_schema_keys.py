"""Earning's keys and the distribution column (issue 15, docs/scaling.md): every per-user table's
primary and unique keys include `user_id`, read from the migrated schema (pg_catalog); the global
tables are reference tables, and the tables not converted yet stand on a list that only shrinks."""

from __future__ import annotations

from earning.main import MIGRATIONS
from tests.conftest import NewDatabase
from tests.support.schema import migrated_schema

# Global tables: replicated to every node as Citus reference tables (deploy/citus/earning.sql).
REFERENCE = {
    "alembic_version": "migration bookkeeping (local to the coordinator)",
    "rule_versions": "the versioned rules every batch reads",
    "challenges": "global challenges and their sponsor budgets (budget slices when charged from many nodes)",
}
# Per-device: the shared-device check reads a device's accounts across users, so distributed by
# device_id (its key also carries user_id).
BY_DEVICE = {"device_accounts": "read by device across users"}
# Per-user tables whose keys lack user_id: the event path's exactly-once keys, global today.
NOT_YET = {
    "events": "primary key event_id: exactly-once by event id across users; per user needs the batch SQL's"
              " ON CONFLICT and lookups keyed (user_id, event_id)",
    "held_earnings": "primary key held_earning_id and unique event_id (as events)",
    "credits": "primary key request_id (the credit outbox): keyed (user_id, request_id) with the resend loop",
}
# Local to each node: the events outbox is keyed by one sequence, its relay's publish order.
LOCAL = {"outbox": "domain events waiting for the relay (docs/events.md)"}


async def test_every_per_user_key_includes_user_id(new_database: NewDatabase) -> None:
    schema = await migrated_schema(new_database, "earning_keys", MIGRATIONS)
    named = set(REFERENCE) | set(BY_DEVICE) | set(NOT_YET) | set(LOCAL)
    assert named <= schema.tables, named - schema.tables  # the lists name real tables
    per_user = schema.tables - set(REFERENCE) - set(LOCAL)
    lacking = schema.keys_lacking(per_user, "user_id")
    assert set(lacking) - set(NOT_YET) == set(), {t: lacking[t] for t in set(lacking) - set(NOT_YET)}
    converted = set(NOT_YET) - set(lacking)
    assert converted == set(), f"keyed by user_id now: take them off NOT_YET: {converted}"
    assert all("user_id" in schema.columns[t] for t in per_user)
    assert schema.keys_lacking(set(BY_DEVICE), "device_id") == {}
