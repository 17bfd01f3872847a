"""Wallet rules, pure Python (no grpc, sqlalchemy or asyncpg): currencies and who may move them,
ledger planning, holds, payouts, a user's standing, points expiry. Enum values equal the proto numbers.

The names are re-exported here so callers say `from wallet.domain import ...` whatever module holds them.
"""

from wallet.domain.currencies import (
    COIN_SALES,
    FORFEITED,
    GIFT_CONVERSION,
    GIFT_REVENUE,
    MAX_AMOUNT,
    MAX_BALANCE,
    PAYOUTS,
    POINTS_ISSUANCE,
    POINTS_REDEMPTION,
    Currency,
    Kind,
    PaidCredit,
    PaymentKey,
    check_credit,
    check_spend,
    credit_source,
    fingerprint,
    gift_diamonds,
    payment_key,
    reason_class,
    spend_sink,
    user_account,
)
from wallet.domain.expiry import EXPIRY_REASON, ExpiringLot, LotExpiry, plan_expiry
from wallet.domain.holds import (
    HoldFacts,
    HoldState,
    check_commit,
    check_refund,
    check_release,
    check_ttl,
)
from wallet.domain.keys import MAX_ID_LENGTH, filed_under, id_owner, owned_id
from wallet.domain.ledger import (
    LedgerOp,
    Leg,
    insufficient_funds,
    plan_ledger_ops,
    touched_accounts,
)
from wallet.domain.payouts import PayoutState, payout_cash_minor
from wallet.domain.suspension import UserStatusAction, user_suspended

__all__ = [
    "COIN_SALES", "EXPIRY_REASON", "FORFEITED", "GIFT_CONVERSION", "GIFT_REVENUE", "MAX_AMOUNT",
    "MAX_BALANCE", "MAX_ID_LENGTH", "PAYOUTS", "POINTS_ISSUANCE", "POINTS_REDEMPTION",
    "Currency", "ExpiringLot", "HoldFacts", "HoldState", "Kind", "LedgerOp", "Leg", "LotExpiry",
    "PaidCredit", "PaymentKey", "PayoutState", "UserStatusAction",
    "check_commit", "check_credit", "check_refund", "check_release", "check_spend", "check_ttl", "credit_source",
    "filed_under", "fingerprint", "gift_diamonds", "id_owner", "insufficient_funds", "owned_id",
    "payment_key", "payout_cash_minor", "plan_expiry", "plan_ledger_ops", "reason_class",
    "spend_sink", "touched_accounts", "user_account", "user_suspended",
]
