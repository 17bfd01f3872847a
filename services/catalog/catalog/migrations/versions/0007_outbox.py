"""The transactional outbox of the catalog's domain events (stock low, sold out; docs/events.md).

The platform's frozen `create_outbox_table_v1` (a migration is a snapshot: it never calls the
runtime `outbox_table`, which may change).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

from points_platform.migrations import create_outbox_table_v1

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table_v1(op)


def downgrade() -> None:
    op.drop_table("outbox")
