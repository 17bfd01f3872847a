"""Entitlement terms copied at grant (uses, expiry) and the record of each use (ConsumeEntitlement).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("entitlements", sa.Column("max_uses", sa.Integer, nullable=False, server_default="0"))
    op.add_column("entitlements", sa.Column("unlimited_uses", sa.Boolean, nullable=False, server_default="false"))
    op.add_column("entitlements", sa.Column("use_count", sa.Integer, nullable=False, server_default="0"))
    op.add_column("entitlements", sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True))
    # Entitlements granted before terms existed get their kind's default: a code or a pass is used once (a
    # consumed one counts as used), a cosmetic without limit; tickets and gift records are not consumable.
    op.execute("UPDATE entitlements SET max_uses = 1, use_count = (state = 'CONSUMED')::int "
               "WHERE kind IN ('DISCOUNT_CODE', 'EVENT_PASS')")
    op.execute("UPDATE entitlements SET unlimited_uses = true WHERE kind = 'COSMETIC'")
    op.create_check_constraint("entitlements_uses_bounded", "entitlements",
                               "use_count >= 0 AND (unlimited_uses OR use_count <= max_uses)")
    op.create_table(
        "entitlement_uses",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("entitlement_id", sa.String(64), sa.ForeignKey("entitlements.entitlement_id"), nullable=False),
        sa.Column("use_number", sa.Integer, nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False, server_default=""),
        sa.Column("use_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entitlement", JSONB, nullable=False),
        sa.UniqueConstraint("entitlement_id", "use_number", name="entitlement_uses_once"),
    )


def downgrade() -> None:
    op.drop_table("entitlement_uses")
    op.drop_constraint("entitlements_uses_bounded", "entitlements", type_="check")
    for column in ("expire_time", "use_count", "unlimited_uses", "max_uses"):
        op.drop_column("entitlements", column)
