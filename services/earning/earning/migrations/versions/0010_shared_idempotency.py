"""The platform's one idempotency table (points_platform.idempotency), old replies carried over.

The old table kept (method, request_id) -> (hex request digest, JSON reply). Each row moves to the
shared shape: key (user_id, request_id) (the joining user for JoinChallenge, '' otherwise), the
method's full name, the fingerprint derived from the old digest (`fingerprint_from_digest`, so a
reused key is still refused), the reply as proto bytes (a `google.protobuf.Struct` of the JSON
earning's use cases stored). Two old rows with one request id under different methods collide on
the new key: the older one is kept (the shared key names one request, whatever its method).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from google.protobuf.struct_pb2 import Struct
from sqlalchemy.engine import Connection

from points_platform.idempotency import fingerprint_from_digest, method_name
from points_platform.migrations import replace_idempotency_table_v1, restore_service_idempotency_table_v0

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SERVICE = "points.earning.v1.EarningService"


def _carry(bind: Connection, old: str, shared: sa.Table) -> None:
    rows = bind.execute(sa.text(
        f"SELECT method, request_id, fingerprint, response, create_time FROM {old} ORDER BY create_time, method"
    ))
    kept: dict[tuple[str, str], dict[str, object]] = {}
    for row in rows:
        body = json.loads(bytes(row.response))
        user_id = str(body["participation"]["user_id"]) if row.method == "JoinChallenge" else ""
        reply = Struct()
        reply.update(body)
        method = method_name(SERVICE, row.method)
        kept.setdefault((user_id, row.request_id), {
            "user_id": user_id, "request_id": row.request_id, "method": method,
            "fingerprint": fingerprint_from_digest(method, bytes.fromhex(row.fingerprint)),
            "reply": reply.SerializeToString(deterministic=True), "created_time": row.create_time,
        })
    if kept:
        op.bulk_insert(shared, list(kept.values()))


def upgrade() -> None:
    replace_idempotency_table_v1(op, _carry)


def downgrade() -> None:
    """The old shape, empty: its fingerprints cannot be derived back from the shared ones."""
    restore_service_idempotency_table_v0(op, sa.String(64), key_has_method=True)
