"""Catalog schema: items (with balanced stock counters), campaigns, reservations, idempotency.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("currency", sa.SmallInteger, nullable=False),
        sa.Column("price_amount", sa.BigInteger, nullable=False),
        sa.Column("regions", ARRAY(sa.String(2)), nullable=False),
        sa.Column("available_from", TS),
        sa.Column("available_until", TS),
        sa.Column("limited_stock", sa.Boolean, nullable=False),
        sa.Column("stock_total", sa.BigInteger, nullable=False),
        sa.Column("stock_available", sa.BigInteger, nullable=False),
        sa.Column("stock_reserved", sa.BigInteger, nullable=False),
        sa.Column("stock_sold", sa.BigInteger, nullable=False),
        sa.Column("per_user_limit", sa.Integer, nullable=False),
        sa.Column("per_user_limit_window", sa.SmallInteger, nullable=False),
        sa.Column("attributes", JSONB, nullable=False),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.CheckConstraint("price_amount > 0", name="ck_items_price_positive"),
        sa.CheckConstraint(
            "stock_available >= 0 AND stock_reserved >= 0 AND stock_sold >= 0", name="ck_items_stock_non_negative"
        ),
        sa.CheckConstraint(
            "stock_available + stock_reserved + stock_sold = stock_total", name="ck_items_stock_balanced"
        ),
        sa.CheckConstraint("per_user_limit >= 0", name="ck_items_per_user_limit"),
    )
    op.create_index("ix_items_order", "items", ["create_time", "item_id"])

    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sponsor", sa.Text, nullable=False),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=False),
        sa.Column("regions", ARRAY(sa.String(2)), nullable=False),
        sa.Column("percent_off_bps", sa.Integer),
        sa.Column("fixed_currency", sa.SmallInteger),
        sa.Column("fixed_amount", sa.BigInteger),
        sa.Column("create_time", TS, nullable=False),
        sa.CheckConstraint("start_time < end_time", name="ck_campaigns_window"),
        sa.CheckConstraint("(percent_off_bps IS NOT NULL) <> (fixed_amount IS NOT NULL)", name="ck_campaigns_one_rule"),
        sa.CheckConstraint("fixed_amount IS NULL OR fixed_amount > 0", name="ck_campaigns_fixed_positive"),
    )
    op.create_index("ix_campaigns_order", "campaigns", ["create_time", "campaign_id"])

    op.create_table(
        "campaign_items",
        sa.Column("campaign_id", sa.String(64), sa.ForeignKey("campaigns.campaign_id"), primary_key=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.item_id"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_campaign_items_item", "campaign_items", ["item_id"])

    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("item_version", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("region", sa.String(2), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.SmallInteger, nullable=False),
        sa.Column("unit_amount", sa.BigInteger, nullable=False),
        sa.Column("total_amount", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("took_stock", sa.Boolean, nullable=False),
        sa.Column("expire_time", TS, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("resolve_time", TS),
        sa.CheckConstraint("quantity > 0", name="ck_reservations_quantity"),
        sa.CheckConstraint("total_amount = unit_amount * quantity", name="ck_reservations_total"),
        sa.CheckConstraint("state BETWEEN 1 AND 4", name="ck_reservations_state"),
    )
    op.create_index("ix_reservations_item_user", "reservations", ["item_id", "user_id", "create_time"])
    op.create_index(
        "ix_reservations_active_expiry", "reservations", ["expire_time"], postgresql_where=sa.text("state = 1")
    )

    op.create_table(
        "idempotency",
        sa.Column("method", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary),
        sa.Column("create_time", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("idempotency", "reservations", "campaign_items", "campaigns", "items"):
        op.drop_table(table)
