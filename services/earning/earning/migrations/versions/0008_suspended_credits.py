"""Credits held for a suspended user: the wallet refused them USER_SUSPENDED; they stay
pending and are resent after `suspended_retry_seconds`, so reinstatement releases them.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("credits", sa.Column("held_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("credits", "held_time")
