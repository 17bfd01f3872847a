"""Campaigns ended early by an admin (EndCampaign).

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
    op.add_column("campaigns", sa.Column("ended_time", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint("ck_campaigns_ended_early", "campaigns", "ended_time IS NULL OR ended_time < end_time")


def downgrade() -> None:
    op.drop_constraint("ck_campaigns_ended_early", "campaigns", type_="check")
    op.drop_column("campaigns", "ended_time")
