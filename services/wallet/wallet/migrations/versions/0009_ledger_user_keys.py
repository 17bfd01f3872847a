"""user_id in the keys of transactions, postings, holds and payouts (issue 15: every per-user key
carries the distribution column; docs/scaling.md, docs/wallet.md "Keys by user").

- transactions: key (user_id, transaction_id), one row per user the transaction touches (a gift is
  filed under its sender and under its creator; every other transaction touches one user). Old
  gifts gain their creator's row.
- postings: key (user_id, currency, posting_id), in place of the by-user index; a system leg,
  filed under '' until now, moves under the user whose leg moves the same currency in its
  transaction (`domain.filed_under`), else under the transaction's user. User legs are told from
  system legs by their account (`user:<id>`).
- holds: key (user_id, hold_id); payouts: the creator column is renamed user_id, key (user_id,
  payout_id). Ids made before name no user: they stay valid and are found by the id alone (partial
  indexes on the ids without ':', which new ids always have).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UNNAMED = "strpos({}, ':') = 0"  # the predicate of the by-id indexes, as the store's lookups write it


def upgrade() -> None:
    # The ledger is append-only (triggers): this re-filing is the one sanctioned rewrite.
    op.execute("ALTER TABLE postings DISABLE TRIGGER postings_append_only")
    op.execute("""
        UPDATE postings s SET user_id = u.user_id
        FROM (SELECT DISTINCT ON (transaction_id, currency) transaction_id, currency, user_id FROM postings
              WHERE user_id <> '' ORDER BY transaction_id, currency, posting_id) u
        WHERE s.user_id = '' AND u.transaction_id = s.transaction_id AND u.currency = s.currency
    """)
    op.execute("""
        UPDATE postings s SET user_id = t.user_id FROM transactions t
        WHERE s.user_id = '' AND t.transaction_id = s.transaction_id
    """)
    op.execute("ALTER TABLE postings ENABLE TRIGGER postings_append_only")
    op.execute("ALTER TABLE transactions DROP CONSTRAINT transactions_pkey")
    op.execute("ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (user_id, transaction_id)")
    op.execute("""
        INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference, create_time)
        SELECT DISTINCT t.transaction_id, p.user_id, t.request_id, t.kind, t.reason, t.reference, t.create_time
        FROM transactions t JOIN postings p ON p.transaction_id = t.transaction_id AND p.user_id <> t.user_id
    """)
    # The by-user index becomes the key (posting ids are unique, so is any key holding one): a
    # posting writes one index entry fewer than before, which pays for the wider keys.
    op.execute("ALTER TABLE postings DROP CONSTRAINT postings_pkey")
    op.execute("ALTER TABLE postings ADD CONSTRAINT postings_pkey PRIMARY KEY (user_id, currency, posting_id)")
    op.drop_index("postings_by_user", table_name="postings")
    op.execute("ALTER TABLE holds DROP CONSTRAINT holds_pkey")
    op.execute("ALTER TABLE holds ADD CONSTRAINT holds_pkey PRIMARY KEY (user_id, hold_id)")
    # Ids that name no user (no ':') are found by the id alone; new ids stay out of these indexes.
    op.create_index("holds_by_id", "holds", ["hold_id"], postgresql_where=sa.text(UNNAMED.format("hold_id")))
    op.alter_column("payouts", "creator_id", new_column_name="user_id")
    op.execute("ALTER TABLE payouts DROP CONSTRAINT payouts_pkey")
    op.execute("ALTER TABLE payouts ADD CONSTRAINT payouts_pkey PRIMARY KEY (user_id, payout_id)")
    op.create_index("payouts_by_id", "payouts", ["payout_id"], postgresql_where=sa.text(UNNAMED.format("payout_id")))


def downgrade() -> None:
    op.drop_index("payouts_by_id", table_name="payouts")
    op.execute("ALTER TABLE payouts DROP CONSTRAINT payouts_pkey")
    op.alter_column("payouts", "user_id", new_column_name="creator_id")
    op.execute("ALTER TABLE payouts ADD CONSTRAINT payouts_pkey PRIMARY KEY (payout_id)")
    op.drop_index("holds_by_id", table_name="holds")
    op.execute("ALTER TABLE holds DROP CONSTRAINT holds_pkey")
    op.execute("ALTER TABLE holds ADD CONSTRAINT holds_pkey PRIMARY KEY (hold_id)")
    op.execute("ALTER TABLE postings DROP CONSTRAINT postings_pkey")
    op.execute("ALTER TABLE postings ADD CONSTRAINT postings_pkey PRIMARY KEY (posting_id)")
    op.create_index("postings_by_user", "postings", ["user_id", "currency", "posting_id"])
    op.execute("ALTER TABLE transactions DROP CONSTRAINT transactions_pkey")
    op.execute("ALTER TABLE transactions DISABLE TRIGGER transactions_append_only")
    op.execute("ALTER TABLE postings DISABLE TRIGGER postings_append_only")
    # A gift's creator row goes (the sender's, holding the same facts, stays); system legs back to ''.
    op.execute("""
        DELETE FROM transactions t WHERE t.kind = 4 AND NOT EXISTS (
            SELECT 1 FROM postings p WHERE p.user_id = t.user_id AND p.transaction_id = t.transaction_id
              AND p.currency = 2)
    """)
    op.execute("UPDATE postings SET user_id = '' WHERE account <> 'user:' || user_id")
    op.execute("ALTER TABLE postings ENABLE TRIGGER postings_append_only")
    op.execute("ALTER TABLE transactions ENABLE TRIGGER transactions_append_only")
    op.execute("ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (transaction_id)")
