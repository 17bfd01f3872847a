"""The transactional outbox of the redemption's domain events (docs/events.md).

Written out rather than built from points_platform.outbox: a migration must not change when the
library does.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
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


def downgrade() -> None:
    op.drop_table("outbox")
