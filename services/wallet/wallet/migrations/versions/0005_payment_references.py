"""Payment references: a COINS credit (a payment) is unique per user, currency and reference.

The ledger batch inserts a row here in the same transaction as the credit; the primary key refuses a
second credit of one payment under another request id (PAYMENT_ALREADY_CREDITED).

Existing COINS credits are carried over: per (user, currency, reference) the first credit (by
create_time, then transaction id) owns the reference. Later duplicates, credited before this rule,
stay in the ledger as they are (it is immutable; reversing a double payment is a finance decision):
they are counted in the migration's log and found with the query in docs/wallet.md.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# Kind 1 = CREDIT, currency 2 = COINS (wallet.domain); the user leg of a credit carries the user.
_COINS_CREDITS = """
    SELECT p.user_id, p.currency, t.reference, t.transaction_id, t.request_id, t.create_time
    FROM transactions t JOIN postings p ON p.transaction_id = t.transaction_id AND p.user_id <> ''
    WHERE t.kind = 1 AND p.currency = 2 AND t.reference <> ''
"""


def upgrade() -> None:
    op.create_table(
        "payment_references",
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("currency", sa.SmallInteger, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("transaction_id", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "currency", "reference", name="payment_references_pkey"),
    )
    op.execute(
        "INSERT INTO payment_references (user_id, currency, reference, transaction_id, request_id, create_time) "
        "SELECT DISTINCT ON (user_id, currency, reference) * FROM (" + _COINS_CREDITS + ") c "
        "ORDER BY user_id, currency, reference, create_time, transaction_id"
    )
    duplicates = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM (" + _COINS_CREDITS + ") c "
        "WHERE NOT EXISTS (SELECT 1 FROM payment_references r WHERE r.transaction_id = c.transaction_id)"
    )).scalar()
    if duplicates:
        log.warning(
            "%d COINS credits repeat a payment reference credited before them; they stay in the ledger "
            "(see docs/wallet.md, 'Payment references')", duplicates,
        )


def downgrade() -> None:
    op.drop_table("payment_references")
