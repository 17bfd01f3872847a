"""Devices are locked by advisory locks (store/batch.py): the `devices` lock rows go.

The table held only device ids, each also in `device_accounts`; a downgrade rebuilds it from there.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("devices")


def downgrade() -> None:
    op.create_table("devices", sa.Column("device_id", sa.String(128), primary_key=True))
    op.execute("INSERT INTO devices (device_id) SELECT DISTINCT device_id FROM device_accounts")
