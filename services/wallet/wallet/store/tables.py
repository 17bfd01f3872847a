"""SQLAlchemy tables of the wallet service (its own database).

Every table is per user and keyed by user_id first (docs/scaling.md: the distribution column);
system accounts have no balance row: their balance is the sum of their postings, which are filed
under the users they move money for (`domain.filed_under`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    text,
)

from points_platform.idempotency import idempotency_table
from points_platform.outbox import outbox_table

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("currency", SmallInteger, nullable=False),
    Column("available", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("user_id", "currency", name="accounts_pkey"),
    CheckConstraint("available >= 0", name="accounts_available_not_negative"),
    CheckConstraint("held >= 0", name="accounts_held_not_negative"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("transaction_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),  # one row per user the transaction touches (0009)
    Column("request_id", Text, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "transaction_id", name="transactions_pkey"),
)

postings = Table(
    "postings",
    metadata,
    Column("posting_id", BigInteger, Identity(), nullable=False),
    Column("transaction_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),  # the user the leg is filed under; a user leg's account is user:<id>
    Column("account", Text, nullable=False),
    Column("currency", SmallInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=True),
    # also the by-user index of the reads (newest first per user and currency)
    PrimaryKeyConstraint("user_id", "currency", "posting_id", name="postings_pkey"),
    Index("postings_by_transaction", "transaction_id"),
)

# The platform's one idempotency table (points_platform.idempotency): replies as proto bytes.
idempotency = idempotency_table(metadata)

# Folded idempotency of Reserve, CommitHold and ReleaseHold: the row their hold statement writes
# beside its effect, keyed like the shared table, with what the reply needs beyond the hold row
# (the balance after the call, a commit's transaction); the reply is rebuilt from it (holds.py).
hold_requests = Table(
    "hold_requests",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("hold_id", Text, nullable=False),
    Column("available", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("transaction_id", Text, nullable=True),
    Column("created_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "request_id", name="hold_requests_pkey"),
)

holds = Table(
    "holds",
    metadata,
    Column("hold_id", Text, nullable=False),  # names its user (domain.owned_id)
    Column("user_id", Text, nullable=False),
    Column("currency", SmallInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("committed_amount", BigInteger, nullable=False, server_default="0"),
    Column("state", SmallInteger, nullable=False),
    Column("reference", Text, nullable=False),
    Column("purpose", Text, nullable=False, server_default=""),
    Column("expire_time", DateTime(timezone=True), nullable=True),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("resolve_time", DateTime(timezone=True), nullable=True),
    # given back by RefundHold, never more than was debited
    Column("refunded_amount", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("amount > 0 AND committed_amount >= 0 AND committed_amount <= amount", name="holds_amounts"),
    CheckConstraint(
        "refunded_amount >= 0 AND refunded_amount <= committed_amount", name="holds_refunded_within_committed"
    ),
    PrimaryKeyConstraint("user_id", "hold_id", name="holds_pkey"),
    # ids that name no user (made before 0009, or too long a user id): no ':' (domain.keys)
    Index("holds_by_id", "hold_id", postgresql_where=text("strpos(hold_id, ':') = 0")),
    Index("holds_active_by_expiry", "expire_time", postgresql_where=text("state = 1 AND expire_time IS NOT NULL")),
)

payouts = Table(
    "payouts",
    metadata,
    Column("payout_id", Text, nullable=False),  # names its user (domain.owned_id)
    Column("user_id", Text, nullable=False),  # the creator
    Column("diamonds", BigInteger, nullable=False),
    Column("cash_value_minor", BigInteger, nullable=False),
    Column("cash_currency", Text, nullable=False),
    Column("cash_minor_per_thousand_diamonds", BigInteger, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("hold_id", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("complete_time", DateTime(timezone=True), nullable=True),
    Column("failure_reason", Text, nullable=False, server_default=""),
    Column("transaction_id", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("user_id", "payout_id", name="payouts_pkey"),
    Index("payouts_by_id", "payout_id", postgresql_where=text("strpos(payout_id, ':') = 0")),
)

# One row per payment (COINS credit): its reference is unique per user and currency, so a payment is
# credited once whatever the request id; written in the same transaction as the credit (0005).
payment_references = Table(
    "payment_references",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("currency", SmallInteger, nullable=False),
    Column("reference", Text, nullable=False),
    Column("transaction_id", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "currency", "reference", name="payment_references_pkey"),
)

# POINTS credited while expiry is on (points_expiry_days > 0): one lot per credit, consumed oldest
# first by debits and hold commits; the expiry job posts what remains of an expired lot.
points_lots = Table(
    "points_lots",
    metadata,
    Column("lot_id", BigInteger, Identity(), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("expired", BigInteger, nullable=False, server_default="0"),
    Column("expire_time", DateTime(timezone=True), nullable=False),
    Column("transaction_id", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    CheckConstraint("remaining >= 0 AND expired >= 0 AND remaining + expired <= amount", name="points_lots_amounts"),
    PrimaryKeyConstraint("user_id", "lot_id", name="points_lots_pkey"),
    Index("points_lots_open_by_user", "user_id", "expire_time", "lot_id", postgresql_where=text("remaining > 0")),
    Index("points_lots_open_by_expiry", "expire_time", postgresql_where=text("remaining > 0")),
)

# Suspended users: a row while the user is suspended, deleted on reinstatement. Money
# paths check it in the statement that moves the money (docs/architecture.md, User suspension).
suspended_users = Table(
    "suspended_users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("change_id", BigInteger, nullable=False),  # the user_status_changes row that suspended
)

# Every suspension and reinstatement, kept for audit: who (operator), when, why, which ticket.
user_status_changes = Table(
    "user_status_changes",
    metadata,
    Column("change_id", BigInteger, Identity(), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("action", SmallInteger, nullable=False),  # UserStatusAction
    Column("operator_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("ticket", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "change_id", name="user_status_changes_pkey"),
)

# Domain events (docs/events.md), written by the statements that post the ledger transactions
# (store/events.py); the relay publishes them. Migration 0009 also holds their SQL helpers.
outbox = outbox_table(metadata)
