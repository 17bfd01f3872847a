"""SQLAlchemy tables of the redemption service (its own database)."""

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
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

from points_platform.idempotency import idempotency_table
from points_platform.outbox import outbox_table

metadata = MetaData()

# One row per redemption: the saga's persisted state, written before each step.
sagas = Table(
    "sagas",
    metadata,
    Column("redemption_id", String(64), primary_key=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("item_id", String(128), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("region", String(2), nullable=False),
    Column("recipient_id", String(128), nullable=False, server_default=""),
    Column("state", String(16), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("step", String(32)),
    Column("cancel_reason", String(128), nullable=False, server_default=""),
    Column("item", JSONB),
    Column("currency", String(16), nullable=False, server_default=""),
    Column("amount", BigInteger, nullable=False, server_default="0"),
    Column("reservation_id", String(128), nullable=False, server_default=""),
    Column("reserved_at", DateTime(timezone=True)),
    Column("hold_id", String(128), nullable=False, server_default=""),
    Column("entitlements_granted", Boolean, nullable=False, server_default="false"),
    Column("funds_committed", Boolean, nullable=False, server_default="false"),
    Column("stock_attempt", Integer, nullable=False, server_default="0"),
    Column("notes", JSONB, nullable=False, server_default="[]"),
    Column("refund_request_id", String(128), unique=True),
    Column("refund_fingerprint", String(64)),
    Column("refund_reason", Text, nullable=False, server_default=""),
    Column("completed_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(64), nullable=False, server_default=""),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("amount >= 0", name="amount_not_negative"),
    CheckConstraint("state IN ('PENDING','COMPLETED','CANCELLED','REFUNDED')", name="state_known"),
)
Index("sagas_user_newest", sagas.c.user_id, sagas.c.create_time.desc(), sagas.c.redemption_id.desc())
Index("sagas_pending", sagas.c.next_attempt_at, postgresql_where=sagas.c.state == "PENDING")

# Append-only log of step attempts: what GetRedemption shows.
saga_steps = Table(
    "saga_steps",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("redemption_id", String(64), ForeignKey("sagas.redemption_id"), nullable=False, index=True),
    Column("name", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("time", DateTime(timezone=True), nullable=False),
)

entitlements = Table(
    "entitlements",
    metadata,
    Column("entitlement_id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("redemption_id", String(64), ForeignKey("sagas.redemption_id"), nullable=False),
    Column("unit", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("item_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("discount_code", String(64), unique=True),
    Column("raffle_id", String(128), nullable=False, server_default=""),
    Column("event_id", String(128), nullable=False, server_default=""),
    Column("recipient_id", String(128), nullable=False, server_default=""),
    Column("cosmetic_id", String(128), nullable=False, server_default=""),
    Column("gift_id", String(128), nullable=False, server_default=""),
    Column("create_time", DateTime(timezone=True), nullable=False),
    # The item's terms at grant (catalog EntitlementTerms): consumption needs no catalog call.
    Column("max_uses", Integer, nullable=False, server_default="0"),
    Column("unlimited_uses", Boolean, nullable=False, server_default="false"),
    Column("use_count", Integer, nullable=False, server_default="0"),
    Column("expire_time", DateTime(timezone=True)),
    # A retried grant step can never grant a unit twice.
    UniqueConstraint("redemption_id", "unit", name="entitlements_one_per_unit"),
    CheckConstraint("use_count >= 0 AND (unlimited_uses OR use_count <= max_uses)", name="entitlements_uses_bounded"),
)
Index("entitlements_user_newest", entitlements.c.user_id, entitlements.c.create_time.desc(),
      entitlements.c.entitlement_id.desc())
Index("entitlements_raffle", entitlements.c.raffle_id, postgresql_where=entitlements.c.raffle_id != "")

# One row per ConsumeEntitlement that took effect; its request_id is the idempotency key, stored with the
# answer in the transaction that counted the use.
entitlement_uses = Table(
    "entitlement_uses",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("entitlement_id", String(64), ForeignKey("entitlements.entitlement_id"), nullable=False),
    Column("use_number", Integer, nullable=False),
    Column("caller", String(64), nullable=False),
    Column("reference", String(200), nullable=False, server_default=""),
    Column("use_time", DateTime(timezone=True), nullable=False),
    # The entitlement right after this use: what a replay answers.
    Column("entitlement", JSONB, nullable=False),
    # However the uses race, the n-th use of an entitlement exists once.
    UniqueConstraint("entitlement_id", "use_number", name="entitlement_uses_once"),
)

raffle_draws = Table(
    "raffle_draws",
    metadata,
    Column("raffle_id", String(128), primary_key=True),
    Column("seed", LargeBinary, nullable=False),
    Column("seed_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("draw_after", DateTime(timezone=True), nullable=False),
    Column("winners_wanted", Integer, nullable=False),
    Column("winner_entitlement_ids", JSONB, nullable=False, server_default="[]"),
    Column("winner_user_ids", JSONB, nullable=False, server_default="[]"),
    Column("ticket_count", BigInteger, nullable=False, server_default="0"),
    Column("prepare_time", DateTime(timezone=True), nullable=False),
    Column("draw_time", DateTime(timezone=True)),
)

# Stored replies of the admin RPCs other than Redeem and refunds (whose keys live on the saga) and
# ConsumeEntitlement (on its use row): the platform's one idempotency table.
idempotency = idempotency_table(metadata)

# Domain events committed with the changes they describe, until the relay publishes them (docs/events.md).
outbox = outbox_table(metadata)
