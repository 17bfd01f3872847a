"""Wallet domain metrics (points issued, redeemed, held; docs/architecture.md, Operations), counted after COMMIT.

Callers increment only for effects their own DB transaction committed: replays of a stored
response and failed operations count nothing, so the counters add up to the ledger.
"""

from __future__ import annotations

from prometheus_client import Counter

from wallet.domain import Currency, HoldState, Kind, LedgerOp
from wallet.use_cases.results import HoldResult

CREDITED = Counter(
    "points_wallet_credited_total", "Amount credited to user accounts", ["currency", "reason_class"]
)
DEBITED = Counter(
    "points_wallet_debited_total",
    "Amount taken out of user accounts (debits, hold commits, payouts, expiry)",
    ["currency", "reason_class"],
)
GIFTED = Counter(
    "points_wallet_gifted_total", "Gifts: coins spent by senders and diamonds credited to creators", ["currency"]
)
HOLDS = Counter("points_wallet_holds_total", "Holds placed and resolved, by state", ["currency", "state"])
HELD_AMOUNT = Counter(
    "points_wallet_held_amount_total", "Amount by hold state (placed = active)", ["currency", "state"]
)


def ledger_committed(op: LedgerOp) -> None:
    """A credit/debit/gift this process just committed."""
    if op.kind is Kind.GIFT:
        for leg in op.legs:
            if leg.is_user:
                GIFTED.labels(leg.currency.name).inc(abs(leg.amount))
        return
    for leg in op.legs:
        if leg.is_user:
            counter = CREDITED if leg.amount > 0 else DEBITED
            counter.labels(leg.currency.name, op.reason_class).inc(abs(leg.amount))


def hold_committed(result: HoldResult) -> None:
    """A reserve (state ACTIVE), commit, release or expiry this process just committed."""
    hold = result.hold
    amount = hold.committed_amount if hold.state is HoldState.COMMITTED else hold.amount
    HOLDS.labels(hold.currency.name, hold.state.name).inc()
    HELD_AMOUNT.labels(hold.currency.name, hold.state.name).inc(amount)
    if hold.state is HoldState.COMMITTED and hold.amount > hold.committed_amount:
        # A partial commit releases the rest: counted, so that placed = committed + released +
        # expired + still active, and the amount held now can be derived.
        HELD_AMOUNT.labels(hold.currency.name, HoldState.RELEASED.name).inc(hold.amount - hold.committed_amount)
    if hold.state is HoldState.COMMITTED and result.transaction is not None:
        kind = result.transaction.kind
        DEBITED.labels(hold.currency.name, "payout" if kind is Kind.PAYOUT else "hold_commit").inc(amount)


def hold_refunded(result: HoldResult, amount: int) -> None:
    """A refund of a committed hold this process just committed."""
    CREDITED.labels(result.hold.currency.name, "refund").inc(amount)


def points_expired(amount: int) -> None:
    DEBITED.labels(Currency.POINTS.name, "expiry").inc(amount)
