"""Points lots: POINTS credited while expiry is on, consumed oldest first, expired by a job.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "points_lots",
        sa.Column("lot_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.Column("expired", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("expire_time", TS, nullable=False),
        sa.Column("transaction_id", sa.Text, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.CheckConstraint(
            "remaining >= 0 AND expired >= 0 AND remaining + expired <= amount", name="points_lots_amounts"
        ),
    )
    op.create_index(
        "points_lots_open_by_user",
        "points_lots",
        ["user_id", "expire_time", "lot_id"],
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "points_lots_open_by_expiry", "points_lots", ["expire_time"], postgresql_where=sa.text("remaining > 0")
    )


def downgrade() -> None:
    op.drop_table("points_lots")
