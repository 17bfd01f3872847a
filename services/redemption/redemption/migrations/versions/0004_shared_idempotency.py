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

from points_platform.idempotency import idempotency_columns

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SERVICE = "points.redemption.v1.RedemptionService"


def upgrade() -> None:
    op.rename_table("idempotency", "idempotency_service")
    op.execute("ALTER TABLE idempotency_service RENAME CONSTRAINT idempotency_pkey TO idempotency_service_pkey")
    op.create_table("idempotency", *idempotency_columns())
    # sha256(method full name || 0x00 || digest): fingerprint_from_digest, in SQL.
    op.execute(sa.text(
        "INSERT INTO idempotency (user_id, request_id, method, fingerprint, reply, created_time) "
        "SELECT '', request_id, :service || '.' || method, "
        "sha256(convert_to(:service || '.' || method, 'UTF8') || '\\x00'::bytea || decode(fingerprint, 'hex')), "
        "response, create_time FROM idempotency_service"
    ).bindparams(service=SERVICE))
    op.drop_table("idempotency_service")


def downgrade() -> None:
    # Keys are not carried back (the old fingerprint cannot be recovered from the new one): after a
    # downgrade a retried raffle RPC is judged afresh, and preparing or drawing a raffle again answers
    # the raffle as it stands.
    op.drop_table("idempotency")
    op.create_table(
        "idempotency",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
