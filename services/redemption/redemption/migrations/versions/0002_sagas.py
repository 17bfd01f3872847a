"""Sagas, their step log, entitlements, raffle draws and stored admin responses.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sagas",
        sa.Column("redemption_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("region", sa.String(2), nullable=False),
        sa.Column("recipient_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("step", sa.String(32)),
        sa.Column("cancel_reason", sa.String(128), nullable=False, server_default=""),
        sa.Column("item", JSONB),
        sa.Column("currency", sa.String(16), nullable=False, server_default=""),
        sa.Column("amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reservation_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("reserved_at", sa.DateTime(timezone=True)),
        sa.Column("hold_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("entitlements_granted", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("funds_committed", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("stock_attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("notes", JSONB, nullable=False, server_default="[]"),
        sa.Column("refund_request_id", sa.String(128), unique=True),
        sa.Column("refund_fingerprint", sa.String(64)),
        sa.Column("refund_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=False, server_default=""),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
        sa.CheckConstraint("state IN ('PENDING','COMPLETED','CANCELLED','REFUNDED')", name="state_known"),
    )
    op.create_index("sagas_user_newest", "sagas",
                    ["user_id", sa.text("create_time DESC"), sa.text("redemption_id DESC")])
    op.create_index("sagas_pending", "sagas", ["next_attempt_at"], postgresql_where=sa.text("state = 'PENDING'"))
    op.create_table(
        "saga_steps",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("redemption_id", sa.String(64), sa.ForeignKey("sagas.redemption_id"), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_saga_steps_redemption_id", "saga_steps", ["redemption_id"])
    op.create_table(
        "entitlements",
        sa.Column("entitlement_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("redemption_id", sa.String(64), sa.ForeignKey("sagas.redemption_id"), nullable=False),
        sa.Column("unit", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("discount_code", sa.String(64), unique=True),
        sa.Column("raffle_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("event_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("recipient_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("cosmetic_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("gift_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("redemption_id", "unit", name="entitlements_one_per_unit"),
    )
    op.create_index(
        "entitlements_user_newest", "entitlements",
        ["user_id", sa.text("create_time DESC"), sa.text("entitlement_id DESC")],
    )
    op.create_index("entitlements_raffle", "entitlements", ["raffle_id"], postgresql_where=sa.text("raffle_id <> ''"))
    op.create_table(
        "raffle_draws",
        sa.Column("raffle_id", sa.String(128), primary_key=True),
        sa.Column("seed", sa.LargeBinary, nullable=False),
        sa.Column("seed_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("draw_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("winners_wanted", sa.Integer, nullable=False),
        sa.Column("winner_entitlement_ids", JSONB, nullable=False, server_default="[]"),
        sa.Column("winner_user_ids", JSONB, nullable=False, server_default="[]"),
        sa.Column("ticket_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("prepare_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("draw_time", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "idempotency",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("idempotency", "raffle_draws", "entitlements", "saga_steps", "sagas"):
        op.drop_table(table)
