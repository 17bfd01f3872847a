"""Devices: one lock row per device, so concurrent batches count a device's accounts in turn.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("devices", sa.Column("device_id", sa.String(128), primary_key=True))
    # Devices already seen get their row now; new ones are created by the first batch using them.
    op.execute("INSERT INTO devices (device_id) SELECT DISTINCT device_id FROM device_accounts")


def downgrade() -> None:
    op.drop_table("devices")
