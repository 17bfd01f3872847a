"""The transactional outbox of earning's domain events (docs/events.md), and the two counters that
version their aggregates: a user's batches (`user_state.event_version`) and a challenge's budget
exhaustions (`challenges.budget_exhaustions`).

Written out rather than built from points_platform.outbox: a migration must not change when the
library does.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("sequence", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("partition", sa.SmallInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_time", sa.DateTime(timezone=True)),
    )
    op.create_index("outbox_unpublished", "outbox", ["partition", "sequence"],
                    postgresql_where=sa.text("published_time IS NULL"))
    op.create_index("outbox_published", "outbox", ["published_time"],
                    postgresql_where=sa.text("published_time IS NOT NULL"))
    op.add_column("user_state", sa.Column("event_version", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("challenges", sa.Column("budget_exhaustions", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("challenges", "budget_exhaustions")
    op.drop_column("user_state", "event_version")
    op.drop_table("outbox")
