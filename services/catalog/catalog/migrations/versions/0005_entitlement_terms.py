"""How an item's entitlement is used and how long it lives (EntitlementTerms).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {} reads as the kind's default, so existing items keep their meaning without a backfill.
    op.add_column("items", sa.Column("entitlement_terms", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")))


def downgrade() -> None:
    op.drop_column("items", "entitlement_terms")
