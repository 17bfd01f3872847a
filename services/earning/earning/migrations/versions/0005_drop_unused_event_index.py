"""Drop events_user_type_time: no query reads it (recent events are read per user and time, across
types, through events_user_time), and every recorded event paid for its upkeep.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("events_user_type_time", table_name="events")


def downgrade() -> None:
    op.create_index("events_user_type_time", "events", ["user_id", "type", "occurred_at"])
