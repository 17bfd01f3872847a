"""SQLAlchemy tables of the catalog service (its own database). Migration 0002 creates them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from points_platform.idempotency import idempotency_table
from points_platform.outbox import outbox_table

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("item_id", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("currency", SmallInteger, nullable=False),
    Column("price_amount", BigInteger, nullable=False),
    Column("regions", ARRAY(String(2)), nullable=False),
    Column("available_from", DateTime(timezone=True)),
    Column("available_until", DateTime(timezone=True)),
    Column("limited_stock", Boolean, nullable=False),
    Column("stock_total", BigInteger, nullable=False),
    Column("stock_available", BigInteger, nullable=False),
    Column("stock_reserved", BigInteger, nullable=False),
    Column("stock_sold", BigInteger, nullable=False),
    Column("per_user_limit", Integer, nullable=False),
    Column("per_user_limit_window", SmallInteger, nullable=False),
    Column("attributes", JSONB, nullable=False),
    # EntitlementTerms; {} = the kind's default (items stored before terms existed).
    Column("entitlement_terms", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("archived", Boolean, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    CheckConstraint("price_amount > 0", name="ck_items_price_positive"),
    CheckConstraint(
        "stock_available >= 0 AND stock_reserved >= 0 AND stock_sold >= 0", name="ck_items_stock_non_negative"
    ),
    CheckConstraint(
        "stock_available + stock_reserved + stock_sold = stock_total", name="ck_items_stock_balanced"
    ),
    CheckConstraint("per_user_limit >= 0", name="ck_items_per_user_limit"),
)
Index("ix_items_order", items.c.create_time, items.c.item_id)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("sponsor", Text, nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True), nullable=False),
    Column("regions", ARRAY(String(2)), nullable=False),
    Column("percent_off_bps", Integer),
    Column("fixed_currency", SmallInteger),
    Column("fixed_amount", BigInteger),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("ended_time", DateTime(timezone=True)),  # ended early by EndCampaign; set once
    CheckConstraint("start_time < end_time", name="ck_campaigns_window"),
    CheckConstraint("ended_time IS NULL OR ended_time < end_time", name="ck_campaigns_ended_early"),
    CheckConstraint(
        "(percent_off_bps IS NOT NULL) <> (fixed_amount IS NOT NULL)", name="ck_campaigns_one_rule"
    ),
    CheckConstraint("fixed_amount IS NULL OR fixed_amount > 0", name="ck_campaigns_fixed_positive"),
)
Index("ix_campaigns_order", campaigns.c.create_time, campaigns.c.campaign_id)

campaign_items = Table(
    "campaign_items",
    metadata,
    Column("campaign_id", String(64), ForeignKey("campaigns.campaign_id"), primary_key=True),
    Column("item_id", String(64), ForeignKey("items.item_id"), primary_key=True),
    Column("position", Integer, nullable=False),
)
Index("ix_campaign_items_item", campaign_items.c.item_id)

reservations = Table(
    "reservations",
    metadata,
    Column("reservation_id", String(64), primary_key=True),
    Column("item_id", String(64), ForeignKey("items.item_id"), nullable=False),
    Column("item_version", BigInteger, nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("region", String(2), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("currency", SmallInteger, nullable=False),
    Column("unit_amount", BigInteger, nullable=False),
    Column("total_amount", BigInteger, nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("took_stock", Boolean, nullable=False),
    Column("expire_time", DateTime(timezone=True), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("resolve_time", DateTime(timezone=True)),
    Column("returned_quantity", BigInteger, nullable=False, server_default=text("0")),  # migration 0003
    CheckConstraint("quantity > 0", name="ck_reservations_quantity"),
    CheckConstraint("total_amount = unit_amount * quantity", name="ck_reservations_total"),
    CheckConstraint("state BETWEEN 1 AND 4", name="ck_reservations_state"),
    CheckConstraint(
        "returned_quantity >= 0 AND returned_quantity <= quantity AND (returned_quantity = 0 OR state = 2)",
        name="ck_reservations_returned",
    ),
)
# Per-user limit counting and the sweeper's scan of due active reservations.
Index("ix_reservations_item_user", reservations.c.item_id, reservations.c.user_id, reservations.c.create_time)
Index(
    "ix_reservations_active_expiry",
    reservations.c.expire_time,
    postgresql_where=text("state = 1"),
)

# The platform's idempotency table (points_platform.idempotency), written by the hot statements too.
idempotency = idempotency_table(metadata)

# Domain events committed with the stock changes that cause them (docs/events.md); migration 0007.
outbox = outbox_table(metadata)

# Reads from memory (store/memory.py, migration 0008; its raw SQL runs against these): the catalog-wide
# version the triggers bump, and each serving process's seen version and lease.
catalog_version = Table(
    "catalog_version",
    metadata,
    Column("id", SmallInteger, CheckConstraint("id = 1"), primary_key=True),
    Column("version", BigInteger, nullable=False),
)
catalog_readers = Table(
    "catalog_readers",
    metadata,
    Column("reader_id", Text, primary_key=True),
    Column("seen_version", BigInteger, nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
)
