"""Ledger: accounts, transactions, postings, idempotency, holds, payouts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("currency", sa.SmallInteger, nullable=False),
        sa.Column("available", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("user_id", "currency", name="accounts_pkey"),
        sa.CheckConstraint("available >= 0", name="accounts_available_not_negative"),
        sa.CheckConstraint("held >= 0", name="accounts_held_not_negative"),
    )
    op.create_table(
        "transactions",
        sa.Column("transaction_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("create_time", TS, nullable=False),
    )
    op.create_table(
        "postings",
        sa.Column("posting_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("transaction_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("currency", sa.SmallInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=True),
    )
    op.create_index("postings_by_user", "postings", ["user_id", "currency", "posting_id"])
    op.create_index("postings_by_transaction", "postings", ["transaction_id"])
    op.create_table(
        "idempotency",
        sa.Column("op", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.PrimaryKeyConstraint("op", "request_id", name="idempotency_pkey"),
    )
    op.create_table(
        "holds",
        sa.Column("hold_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("currency", sa.SmallInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("committed_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False, server_default=""),
        sa.Column("expire_time", TS, nullable=True),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("resolve_time", TS, nullable=True),
        sa.CheckConstraint(
            "amount > 0 AND committed_amount >= 0 AND committed_amount <= amount", name="holds_amounts"
        ),
    )
    op.create_index(
        "holds_active_by_expiry",
        "holds",
        ["expire_time"],
        postgresql_where=sa.text("state = 1 AND expire_time IS NOT NULL"),
    )
    op.create_table(
        "payouts",
        sa.Column("payout_id", sa.Text, primary_key=True),
        sa.Column("creator_id", sa.Text, nullable=False),
        sa.Column("diamonds", sa.BigInteger, nullable=False),
        sa.Column("cash_value_minor", sa.BigInteger, nullable=False),
        sa.Column("cash_currency", sa.Text, nullable=False),
        sa.Column("cash_minor_per_thousand_diamonds", sa.BigInteger, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("hold_id", sa.Text, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("complete_time", TS, nullable=True),
        sa.Column("failure_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("transaction_id", sa.Text, nullable=False, server_default=""),
    )
    # The ledger is append-only: corrections are new reversing transactions.
    op.execute(
        "CREATE FUNCTION wallet_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'ledger rows are immutable'; END $$"
    )
    for table in ("transactions", "postings"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION wallet_ledger_is_append_only()"
        )


def downgrade() -> None:
    for table in ("payouts", "holds", "idempotency", "postings", "transactions", "accounts"):
        op.drop_table(table)
    op.execute("DROP FUNCTION wallet_ledger_is_append_only()")
