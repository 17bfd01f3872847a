"""User suspension: the suspended users and the history of suspensions and reinstatements.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_status_changes",
        sa.Column("change_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("action", sa.SmallInteger, nullable=False),
        sa.Column("operator_id", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ticket", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("user_status_changes_by_user", "user_status_changes", ["user_id", "change_id"])
    op.create_table(
        "suspended_users",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("change_id", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suspended_users")
    op.drop_table("user_status_changes")
