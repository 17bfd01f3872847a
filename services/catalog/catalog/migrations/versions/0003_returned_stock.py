"""Returned units of committed reservations (ReturnStock, used by refunds).

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


def upgrade() -> None:
    op.add_column(
        "reservations", sa.Column("returned_quantity", sa.BigInteger, nullable=False, server_default=sa.text("0"))
    )
    # Only a committed reservation gives units back, never more than it sold.
    op.create_check_constraint(
        "ck_reservations_returned",
        "reservations",
        "returned_quantity >= 0 AND returned_quantity <= quantity AND (returned_quantity = 0 OR state = 2)",
    )


def downgrade() -> None:
    op.drop_constraint("ck_reservations_returned", "reservations", type_="check")
    op.drop_column("reservations", "returned_quantity")
