"""The transactional outbox of the redemption's domain events (docs/events.md).

The platform's frozen `create_outbox_table_v1` (a migration is a snapshot: it never calls the
runtime `outbox_table`, which may change).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

from points_platform.migrations import create_outbox_table_v1

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table_v1(op)


def downgrade() -> None:
    op.drop_table("outbox")
