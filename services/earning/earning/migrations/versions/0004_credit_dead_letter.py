"""Credit dead letter: a credit the wallet refused for good stops being retried.

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
    op.add_column("credits", sa.Column("failed_time", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint("credits_dead_letter_not_pending", "credits", "failed_time IS NULL OR NOT pending")
    op.create_index(
        "credits_failed", "credits", ["failed_time"], postgresql_where=sa.text("failed_time IS NOT NULL")
    )


def downgrade() -> None:
    op.drop_index("credits_failed", table_name="credits")
    op.drop_constraint("credits_dead_letter_not_pending", "credits")
    op.drop_column("credits", "failed_time")
