"""Refunds of committed holds: how much of a hold's committed amount has been given back.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("holds", sa.Column("refunded_amount", sa.BigInteger, nullable=False, server_default="0"))
    op.create_check_constraint(
        "holds_refunded_within_committed", "holds", "refunded_amount >= 0 AND refunded_amount <= committed_amount"
    )


def downgrade() -> None:
    op.drop_constraint("holds_refunded_within_committed", "holds", type_="check")
    op.drop_column("holds", "refunded_amount")
