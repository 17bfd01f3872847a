"""The users' receive-time buckets for the velocity check (`occurred_at` alone can be backdated).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_state", sa.Column("rate_level", sa.Float(precision=53), nullable=False, server_default="0"))
    op.add_column("user_state", sa.Column("rate_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("user_state", "rate_time")
    op.drop_column("user_state", "rate_level")
