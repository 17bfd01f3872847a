"""The transactional outbox of earning's domain events (docs/events.md), and the two counters that
version their aggregates: a user's batches (`user_state.event_version`) and a challenge's budget
exhaustions (`challenges.budget_exhaustions`).

The outbox through the frozen helper `create_outbox_table_v1` (docs/contributing.md).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from points_platform.migrations import create_outbox_table_v1

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table_v1(op)
    op.add_column("user_state", sa.Column("event_version", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("challenges", sa.Column("budget_exhaustions", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("challenges", "budget_exhaustions")
    op.drop_column("user_state", "event_version")
    op.drop_table("outbox")
