"""Count the wallet's own failures (INTERNAL/UNKNOWN) per credit sent alone: after a limit the
credit goes to the dead letter instead of being retried forever.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("credits", sa.Column("wallet_errors", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("credits", "wallet_errors")
