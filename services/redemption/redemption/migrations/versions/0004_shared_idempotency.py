"""The platform's one idempotency table (points_platform.idempotency) replaces the service's own.

Rows carry over whole: the key gains user_id '' (the raffle RPCs name no user), the method its full
name, and the fingerprint is derived from the stored one, which was the hex request digest the new
fingerprint is built on (`fingerprint_from_digest`); so an old key keeps both its replay and its
reuse check. The reply was already the reply message's proto bytes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from points_platform.migrations import replace_idempotency_table_v1, restore_service_idempotency_table_v0

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SERVICE = "points.redemption.v1.RedemptionService"


def _carry(bind: Connection, old: str, new: sa.Table) -> None:
    # sha256(method full name || 0x00 || digest): fingerprint_from_digest, in SQL.
    bind.execute(sa.text(
        f"INSERT INTO {new.name} (user_id, request_id, method, fingerprint, reply, created_time) "
        "SELECT '', request_id, :service || '.' || method, "
        "sha256(convert_to(:service || '.' || method, 'UTF8') || '\\x00'::bytea || decode(fingerprint, 'hex')), "
        f"response, create_time FROM {old}"
    ).bindparams(service=SERVICE))


def upgrade() -> None:
    replace_idempotency_table_v1(op, _carry)


def downgrade() -> None:
    # Keys are not carried back (the old fingerprint cannot be recovered from the new one): after a
    # downgrade a retried raffle RPC is judged afresh, and preparing or drawing a raffle again answers
    # the raffle as it stands.
    restore_service_idempotency_table_v0(op, sa.String(64), key_has_method=False)
