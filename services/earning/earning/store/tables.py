"""SQLAlchemy tables of the earning service (its own database)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from points_platform.idempotency import idempotency_table
from points_platform.outbox import outbox_table

metadata = MetaData()

TS = DateTime(timezone=True)

# Versioned rule sets; an event is evaluated by the newest version effective at its occurred_at.
rule_versions = Table(
    "rule_versions",
    metadata,
    Column("version", BigInteger, primary_key=True),
    Column("effective_from", TS, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("create_time", TS, nullable=False),
)

# One row per user: the lock that serializes a user's evaluations, and the streak.
user_state = Table(
    "user_state",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("streak_last_day", Date, nullable=True),
    Column("streak_days", Integer, nullable=False, server_default="0"),
    # leaky bucket of recent events by receive time (velocity): level as of rate_time
    Column("rate_level", Float(precision=53), nullable=False, server_default="0"),
    Column("rate_time", TS, nullable=True),
    # bumped by every batch that locks the user: the version of the user's points_earned events (0012)
    Column("event_version", BigInteger, nullable=False, server_default="0"),
)

# Every evaluated event and its result: the exactly-once record (event_id is unique).
events = Table(
    "events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("day", Date, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("breakdown", JSONB, nullable=False),
    Column("rejection_reason", String(64), nullable=False, server_default=""),
    Column("held_earning_id", String(64), nullable=False, server_default=""),
    Column("credit_request_id", String(128), nullable=False, server_default=""),
    CheckConstraint("points >= 0", name="events_points_non_negative"),
)
# Recent accepted events of a user (velocity, decay), all types at once.
Index("events_user_time", events.c.user_id, events.c.occurred_at)

# Per user, day and type: points counted against the caps (held ones included) and held points.
daily_counters = Table(
    "daily_counters",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("type", SmallInteger, primary_key=True),
    Column("capped_points", BigInteger, nullable=False, server_default="0"),  # counted against caps, held included
    Column("credited_points", BigInteger, nullable=False, server_default="0"),
    Column("held_points", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("capped_points >= 0 AND credited_points >= 0 AND held_points >= 0", name="counters_non_negative"),
)

paid_targets = Table(
    "paid_targets",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("type", SmallInteger, primary_key=True),
    Column("target_id", String(128), primary_key=True),
)

paid_milestones = Table(
    "paid_milestones",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("game_id", String(128), primary_key=True),
    Column("milestone_id", String(128), primary_key=True),
)

# Who used which device on which day: by device (the primary key) for the shared-device rule, by user
# (with the device, so the read needs no heap) for the account-sharing rule.
device_accounts = Table(
    "device_accounts",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("user_id", String(128), primary_key=True),
)
Index("device_accounts_by_user", device_accounts.c.user_id, device_accounts.c.day, device_accounts.c.device_id)

challenges = Table(
    "challenges",
    metadata,
    Column("challenge_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("start_time", TS, nullable=False),
    Column("end_time", TS, nullable=False),
    Column("regions", ARRAY(String(2)), nullable=False),
    Column("activity_types", ARRAY(SmallInteger), nullable=False),
    Column("multiplier_bps", Integer, nullable=False),
    Column("early_join_window_seconds", BigInteger, nullable=False),
    Column("early_join_bonus_points", BigInteger, nullable=False),
    Column("sponsor", String(200), nullable=False),
    Column("sponsor_budget_points", BigInteger, nullable=False),
    Column("budget_spent_points", BigInteger, nullable=False, server_default="0"),
    Column("create_time", TS, nullable=False),
    # times the sponsor budget ran out (a rejected held earning's refund can re-arm it): the version
    # of its challenge_budget_exhausted events (0012)
    Column("budget_exhaustions", Integer, nullable=False, server_default="0"),
    CheckConstraint(
        "budget_spent_points >= 0 AND (sponsor_budget_points = 0 OR budget_spent_points <= sponsor_budget_points)",
        name="challenges_budget_never_overspent",
    ),
)
Index("challenges_window", challenges.c.start_time, challenges.c.end_time)

participations = Table(
    "participations",
    metadata,
    Column("challenge_id", String(64), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("join_time", TS, nullable=False),
    Column("early", Boolean, nullable=False),
    Column("bonus_points", BigInteger, nullable=False),
)
Index("participations_user", participations.c.user_id)

held_earnings = Table(
    "held_earnings",
    metadata,
    Column("held_earning_id", String(64), primary_key=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("user_id", String(128), nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("day", Date, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("sponsored", JSONB, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("create_time", TS, nullable=False),
    Column("resolve_time", TS, nullable=True),
    Column("resolved_by", String(64), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("credit_request_id", String(128), nullable=False, server_default=""),
)
Index("held_earnings_order", held_earnings.c.create_time, held_earnings.c.held_earning_id)

# Outbox of wallet credits: written with the decision, sent after commit, retried until credited;
# one the wallet refuses for good is dead-lettered (not pending, failed_time set) for an operator.
credits = Table(
    "credits",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("reference", String(128), nullable=False),
    Column("pending", Boolean, nullable=False),
    Column("wallet_transaction_id", String(128), nullable=False, server_default=""),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # sends of this credit alone that the wallet failed on its side (INTERNAL/UNKNOWN)
    Column("wallet_errors", Integer, nullable=False, server_default="0"),
    Column("last_error", String(200), nullable=False, server_default=""),
    Column("create_time", TS, nullable=False, server_default=func.now()),
    Column("failed_time", TS, nullable=True),  # set when dead-lettered
    # set while the wallet refuses the credit because its user is suspended (still pending; 0008)
    Column("held_time", TS, nullable=True),
    CheckConstraint("amount > 0", name="credits_amount_positive"),
    CheckConstraint("failed_time IS NULL OR NOT pending", name="credits_dead_letter_not_pending"),
)
Index("credits_pending", credits.c.create_time, postgresql_where=credits.c.pending)
Index("credits_failed", credits.c.failed_time, postgresql_where=credits.c.failed_time.isnot(None))

# Stored responses of the admin/app mutations keyed by request_id (AIP-155).
# The platform's one shape (points_platform.idempotency), replies as proto bytes.
idempotency = idempotency_table(metadata)
# Admin replies stored before they were typed (Struct bytes of a small JSON object), moved aside by
# migration 0012 and still replayed (store/database.py); nothing new is written here.
idempotency_struct_replies = idempotency_table(metadata, "idempotency_struct_replies")

# Domain events (points.events.v1) waiting for the relay to publish them to NATS (docs/events.md).
# Not the credit outbox above: that one holds what the wallet is owed.
outbox = outbox_table(metadata)
