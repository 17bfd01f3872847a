"""Earning schema: rules, events, counters, challenges, held earnings, the credit outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rule_versions",
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("effective_from", TS, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("create_time", TS, nullable=False),
    )
    op.create_table(
        "user_state",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("streak_last_day", sa.Date, nullable=True),
        sa.Column("streak_days", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("breakdown", postgresql.JSONB, nullable=False),
        sa.Column("rejection_reason", sa.String(64), nullable=False, server_default=""),
        sa.Column("held_earning_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("credit_request_id", sa.String(128), nullable=False, server_default=""),
        sa.CheckConstraint("points >= 0", name="events_points_non_negative"),
    )
    op.create_index("events_user_type_time", "events", ["user_id", "type", "occurred_at"])
    op.create_index("events_user_time", "events", ["user_id", "occurred_at"])
    op.create_table(
        "daily_counters",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("type", sa.SmallInteger, primary_key=True),
        sa.Column("capped_points", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credited_points", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("held_points", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint(
            "capped_points >= 0 AND credited_points >= 0 AND held_points >= 0", name="counters_non_negative"
        ),
    )
    op.create_table(
        "paid_targets",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.SmallInteger, primary_key=True),
        sa.Column("target_id", sa.String(128), primary_key=True),
    )
    op.create_table(
        "paid_milestones",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("game_id", sa.String(128), primary_key=True),
        sa.Column("milestone_id", sa.String(128), primary_key=True),
    )
    op.create_table(
        "device_accounts",
        sa.Column("device_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
    )
    op.create_table(
        "challenges",
        sa.Column("challenge_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=False),
        sa.Column("regions", postgresql.ARRAY(sa.String(2)), nullable=False),
        sa.Column("activity_types", postgresql.ARRAY(sa.SmallInteger), nullable=False),
        sa.Column("multiplier_bps", sa.Integer, nullable=False),
        sa.Column("early_join_window_seconds", sa.BigInteger, nullable=False),
        sa.Column("early_join_bonus_points", sa.BigInteger, nullable=False),
        sa.Column("sponsor", sa.String(200), nullable=False),
        sa.Column("sponsor_budget_points", sa.BigInteger, nullable=False),
        sa.Column("budget_spent_points", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("create_time", TS, nullable=False),
        sa.CheckConstraint(
            "budget_spent_points >= 0 AND (sponsor_budget_points = 0 OR budget_spent_points <= sponsor_budget_points)",
            name="challenges_budget_never_overspent",
        ),
    )
    op.create_index("challenges_window", "challenges", ["start_time", "end_time"])
    op.create_table(
        "participations",
        sa.Column("challenge_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("join_time", TS, nullable=False),
        sa.Column("early", sa.Boolean, nullable=False),
        sa.Column("bonus_points", sa.BigInteger, nullable=False),
    )
    op.create_index("participations_user", "participations", ["user_id"])
    op.create_table(
        "held_earnings",
        sa.Column("held_earning_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("sponsored", postgresql.JSONB, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("resolve_time", TS, nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("credit_request_id", sa.String(128), nullable=False, server_default=""),
    )
    op.create_index("held_earnings_order", "held_earnings", ["create_time", "held_earning_id"])
    op.create_table(
        "credits",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(128), nullable=False),
        sa.Column("pending", sa.Boolean, nullable=False),
        sa.Column("wallet_transaction_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(200), nullable=False, server_default=""),
        sa.Column("create_time", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount > 0", name="credits_amount_positive"),
    )
    op.create_index("credits_pending", "credits", ["create_time"], postgresql_where=sa.text("pending"))
    op.create_table(
        "idempotency",
        sa.Column("method", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("create_time", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "idempotency", "credits", "held_earnings", "participations", "challenges", "device_accounts",
        "paid_milestones", "paid_targets", "daily_counters", "events", "user_state", "rule_versions",
    ):
        op.drop_table(table)
