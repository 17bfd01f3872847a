"""The devices of a user per day (the account-sharing rule): device_accounts by user.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("device_accounts_by_user", "device_accounts", ["user_id", "day", "device_id"])


def downgrade() -> None:
    op.drop_index("device_accounts_by_user", table_name="device_accounts")
