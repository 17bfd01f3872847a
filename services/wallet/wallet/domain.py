"""Wallet rules: currencies, who may move what, gift and payout arithmetic, hold resolution,
and the planning of a batch of ledger operations against locked balances.

Pure Python: no grpc, no sqlalchemy. Enum values equal the proto numbers.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from points_platform.errors import AlreadyExists, DomainError, FailedPrecondition, InvalidArgument

# No single balance may exceed this (well inside int64), so sums never overflow the column.
MAX_BALANCE = 2**62
MAX_AMOUNT = 10**15


class Currency(enum.IntEnum):
    POINTS = 1
    COINS = 2
    DIAMONDS = 3


class Kind(enum.IntEnum):
    CREDIT = 1
    DEBIT = 2
    HOLD_COMMIT = 3
    GIFT = 4
    PAYOUT = 5
    EXPIRY = 6
    REFUND = 7
    FORFEIT = 8


class HoldState(enum.IntEnum):
    ACTIVE = 1
    COMMITTED = 2
    RELEASED = 3
    EXPIRED = 4


class UserStatusAction(enum.IntEnum):
    SUSPENDED = 1
    REINSTATED = 2


class PayoutState(enum.IntEnum):
    PENDING = 1
    COMPLETED = 2
    FAILED = 3


# Named system accounts (user_id ""). Their balance is the sum of their postings: they have no
# stored balance row, because a row every credit updates would serialize the whole service.
POINTS_ISSUANCE = "system:points_issuance"
POINTS_REDEMPTION = "system:points_redemption"
# Points taken back from a user: admin forfeits (ForfeitPoints) and expired lots.
FORFEITED = "system:forfeited"
COIN_SALES = "system:coin_sales"
COIN_REDEMPTION = "system:coin_redemption"
GIFT_CONVERSION = "system:gift_conversion"
GIFT_REVENUE = "system:gift_revenue"
PAYOUTS = "system:payouts"


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def currency_not_allowed(message: str, currency: Currency) -> FailedPrecondition:
    return FailedPrecondition("CURRENCY_NOT_ALLOWED", message, metadata={"currency": currency.name})


# --- who may move which currency (docs/architecture.md, Currencies and Policy) -------------

# Credit: POINTS by earning (activity), redemption (refunds) and admin (adjustments);
# COINS only by payments (with a payment reference); DIAMONDS never (only gifts make them).
_CREDITORS: Mapping[Currency, frozenset[str]] = {
    Currency.POINTS: frozenset({"earning", "redemption", "admin"}),
    Currency.COINS: frozenset({"payments"}),
    Currency.DIAMONDS: frozenset(),
}


def check_credit(caller: str, currency: Currency, reference: str) -> None:
    if caller not in _CREDITORS[currency]:
        raise currency_not_allowed(f"{caller or 'caller'} may not credit {currency.name}", currency)
    if currency is Currency.COINS and not reference:
        raise InvalidArgument(
            "PAYMENT_REFERENCE_REQUIRED",
            "reference: a COINS credit needs the payment reference",
            field_violations=[("reference", "required for COINS")],
        )
    if caller == "admin" and not reference:
        # Points made by hand (support adjustments) are the one path outside activity and refunds:
        # each names the ticket that justifies it, in the ledger for audit.
        raise InvalidArgument(
            "ADJUSTMENT_REFERENCE_REQUIRED",
            "reference: an admin adjustment names its support ticket",
            field_violations=[("reference", "required for admin adjustments")],
        )
    if currency is Currency.POINTS and caller != "earning" and not reference:
        # Activity (earning) is the one source of points whose reason is the rule itself; every other
        # point made (a refund names its redemption) is traceable to what justified it.
        raise InvalidArgument(
            "REFERENCE_REQUIRED",
            "reference: a POINTS credit outside earning names what it is for (e.g. the redemption refunded)",
            field_violations=[("reference", "required for POINTS credits other than earning's")],
        )


# A COINS credit is a payment: one per (user, currency, payment reference), whatever its request id.
PaymentKey = tuple[str, Currency, str]


@dataclass(frozen=True)
class PaidCredit:
    """The credit that already used a payment reference."""

    transaction_id: str
    request_id: str


def payment_key(currency: Currency, user_id: str, reference: str) -> PaymentKey | None:
    """The key under which a credit claims its payment reference (COINS credits only)."""
    return (user_id, currency, reference) if currency is Currency.COINS else None


def payment_already_credited(key: PaymentKey, first: PaidCredit) -> AlreadyExists:
    """A second credit of one payment (another request id): refused, naming the first credit. Replaying
    the first request id returns that credit's full answer."""
    return AlreadyExists(
        "PAYMENT_ALREADY_CREDITED",
        "this payment reference was already credited to the user in this currency",
        metadata={"reference": key[2], "transaction_id": first.transaction_id, "request_id": first.request_id},
    )


def check_spend(currency: Currency) -> None:
    """Debits and holds by redemption/admin: POINTS and COINS. Diamonds leave only as payouts."""
    if currency is Currency.DIAMONDS:
        raise currency_not_allowed("DIAMONDS leave a wallet only through payouts", currency)


def credit_source(currency: Currency) -> str:
    return POINTS_ISSUANCE if currency is Currency.POINTS else COIN_SALES


def spend_sink(currency: Currency) -> str:
    return {Currency.POINTS: POINTS_REDEMPTION, Currency.COINS: COIN_REDEMPTION}.get(currency, PAYOUTS)


# Metrics label: who moved the money, in words with a bounded set of values (the free-text reason
# of a request would make unbounded label cardinality).
_REASON_CLASSES: Mapping[tuple[Kind, str], str] = {
    (Kind.CREDIT, "earning"): "earning",
    (Kind.CREDIT, "redemption"): "refund",
    (Kind.CREDIT, "admin"): "adjustment",
    (Kind.CREDIT, "payments"): "purchase",
    (Kind.DEBIT, "redemption"): "redemption",
    (Kind.DEBIT, "admin"): "adjustment",
}


def reason_class(kind: Kind, caller: str) -> str:
    fixed = {
        Kind.HOLD_COMMIT: "hold_commit", Kind.GIFT: "gift", Kind.PAYOUT: "payout", Kind.EXPIRY: "expiry",
        Kind.REFUND: "refund",
        Kind.FORFEIT: "forfeit",
    }
    return fixed.get(kind) or _REASON_CLASSES.get((kind, caller), "other")


def gift_diamonds(coins: int, rate_bps: int) -> int:
    """floor(coins * rate): the rounding is in the platform's favour."""
    return coins * rate_bps // 10_000


def payout_cash_minor(diamonds: int, minor_per_thousand: int) -> int:
    return diamonds * minor_per_thousand // 1_000


def fingerprint(fields: Mapping[str, object]) -> str:
    """Stable hash of a command's parameters (without its request_id)."""
    body = json.dumps({k: v for k, v in fields.items() if k != "request_id"}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


# --- ledger operations and their planning -------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One posting: user accounts carry user_id, system accounts have user_id ""."""

    user_id: str
    account: str
    currency: Currency
    amount: int

    @property
    def is_user(self) -> bool:
        return bool(self.user_id)


@dataclass(frozen=True)
class LedgerOp:
    """A balanced movement between accounts, applied atomically and idempotently."""

    op: str  # idempotency namespace: "credit", "debit", "gift"
    request_id: str
    fingerprint: str
    kind: Kind
    user_id: str  # the user the transaction is filed under
    legs: tuple[Leg, ...]
    reason: str = ""
    reference: str = ""
    gift_rate_bps: int = 0
    reason_class: str = "other"  # bounded metrics label (see reason_class())
    payment_key: PaymentKey | None = None  # a payment (COINS credit): unique per user, currency, reference
    # The user whose suspension refuses this op (USER_SUSPENDED): the earner of an activity credit,
    # the sender of a gift; "" = applies whatever the user's status (refunds, payments, adjustments).
    refused_if_suspended: str = ""
    # Forfeit "all": the first leg takes the user's whole available balance at planning time, the
    # second gets its opposite (both legs are 0 until then).
    takes_all: bool = False

    def __post_init__(self) -> None:
        totals: dict[Currency, int] = {}
        for leg in self.legs:
            totals[leg.currency] = totals.get(leg.currency, 0) + leg.amount
        if any(totals.values()):
            raise ValueError(f"unbalanced ledger op {self.request_id}: {totals}")

    @property
    def key(self) -> tuple[str, str]:
        return (self.op, self.request_id)


AccountKey = tuple[str, Currency]


@dataclass
class PlannedOp:
    """Outcome of one op in a plan: the available balance after each user leg, or an error."""

    op: LedgerOp
    error: DomainError | None = None
    balances_after: list[tuple[str, Currency, int, int]] = field(default_factory=list)  # user, cur, avail, held
    transaction_id: str = ""  # the transaction the op makes if it applies


def user_suspended(user_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "USER_SUSPENDED",
        "the user is suspended: this operation is refused until reinstatement",
        metadata={"user_id": user_id},
    )


def _resolve_all(op: LedgerOp, current: Mapping[AccountKey, tuple[int, int]]) -> LedgerOp | DomainError:
    """A forfeit of "all": its legs carry the available balance of its user leg, now that it is locked."""
    user_leg, sink_leg = op.legs
    taken = current.get((user_leg.user_id, user_leg.currency), (0, 0))[0]
    if taken == 0:
        return FailedPrecondition(
            "NOTHING_TO_FORFEIT", "the user has no available points", metadata={"user_id": user_leg.user_id}
        )
    return replace(op, legs=(replace(user_leg, amount=-taken), replace(sink_leg, amount=taken)), takes_all=False)


def insufficient_funds(user_id: str, currency: Currency) -> FailedPrecondition:
    return FailedPrecondition(
        "INSUFFICIENT_FUNDS",
        f"available {currency.name} balance is too low",
        metadata={"user_id": user_id, "currency": currency.name},
    )


def plan_ledger_ops(
    ops: Sequence[LedgerOp],
    balances: Mapping[AccountKey, tuple[int, int]],
    *,
    paid: Mapping[PaymentKey, PaidCredit] | None = None,
    transaction_ids: Sequence[str] | None = None,
    suspended: Collection[str] = (),
) -> tuple[list[PlannedOp], dict[AccountKey, int]]:
    """Apply ops in order to locked (available, held) balances; an op that would overdraw
    fails alone (INSUFFICIENT_FUNDS) and the rest still apply. Returns each op's outcome and
    the net change of available per user account.

    `paid`: payment references already credited (from the database); a payment whose reference is
    there, or was taken by an earlier op of this batch that applies, fails alone
    (PAYMENT_ALREADY_CREDITED). `transaction_ids`: the id each op's transaction gets if it applies.
    `suspended`: users suspended now (locked batch); their suspendable ops fail alone (USER_SUSPENDED)."""
    current = {k: v for k, v in balances.items()}
    claimed: dict[PaymentKey, PaidCredit] = dict(paid or {})
    ids = transaction_ids if transaction_ids is not None else [""] * len(ops)
    deltas: dict[AccountKey, int] = {}
    planned: list[PlannedOp] = []
    for op, transaction_id in zip(ops, ids, strict=True):
        outcome = PlannedOp(op, transaction_id=transaction_id)
        if op.refused_if_suspended and op.refused_if_suspended in suspended:
            outcome.error = user_suspended(op.refused_if_suspended)
            planned.append(outcome)
            continue
        if op.takes_all:
            resolved = _resolve_all(op, current)
            if isinstance(resolved, DomainError):
                outcome.error = resolved
                planned.append(outcome)
                continue
            op = outcome.op = resolved
        if op.payment_key is not None and op.payment_key in claimed:
            outcome.error = payment_already_credited(op.payment_key, claimed[op.payment_key])
            planned.append(outcome)
            continue
        trial: dict[AccountKey, int] = {}
        for leg in op.legs:
            if not leg.is_user:
                continue
            key = (leg.user_id, leg.currency)
            available = trial.get(key, current.get(key, (0, 0))[0]) + leg.amount
            if available < 0:
                outcome.error = insufficient_funds(leg.user_id, leg.currency)
                break
            if available + current.get(key, (0, 0))[1] > MAX_BALANCE:
                outcome.error = FailedPrecondition("BALANCE_LIMIT_EXCEEDED", "the balance would exceed its limit")
                break
            trial[key] = available
        if outcome.error is None:
            for key, available in trial.items():
                held = current.get(key, (0, 0))[1]
                deltas[key] = deltas.get(key, 0) + available - current.get(key, (0, 0))[0]
                current[key] = (available, held)
            for leg in op.legs:
                if leg.is_user:
                    available, held = current[(leg.user_id, leg.currency)]
                    outcome.balances_after.append((leg.user_id, leg.currency, available, held))
            if op.payment_key is not None:
                claimed[op.payment_key] = PaidCredit(transaction_id, op.request_id)
        planned.append(outcome)
    return planned, deltas


def touched_accounts(ops: Iterable[LedgerOp]) -> list[AccountKey]:
    """User accounts of a batch in the one lock order every transaction uses."""
    return sorted({(leg.user_id, leg.currency) for op in ops for leg in op.legs if leg.is_user})


# --- holds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldFacts:
    state: HoldState
    amount: int
    expire_time: datetime | None


def resolution_conflict(state: HoldState) -> FailedPrecondition:
    reason = {
        HoldState.COMMITTED: "HOLD_ALREADY_COMMITTED",
        HoldState.RELEASED: "HOLD_ALREADY_RELEASED",
        HoldState.EXPIRED: "HOLD_EXPIRED",
    }[state]
    return FailedPrecondition(reason, f"the hold is already {state.name.lower()}")


def is_expired(hold: HoldFacts, now: datetime) -> bool:
    return hold.expire_time is not None and now >= hold.expire_time


def check_commit(hold: HoldFacts, amount: int, now: datetime) -> int:
    """The amount to debit (0 = all); an expired hold never commits, even before the sweeper."""
    if hold.state is not HoldState.ACTIVE:
        raise resolution_conflict(hold.state)
    if is_expired(hold, now):
        raise resolution_conflict(HoldState.EXPIRED)
    if amount > hold.amount:
        raise InvalidArgument(
            "AMOUNT_EXCEEDS_HOLD",
            f"amount: at most the held {hold.amount}",
            field_violations=[("amount", f"must be <= {hold.amount}")],
        )
    return amount or hold.amount


def check_release(hold: HoldFacts) -> None:
    if hold.state is not HoldState.ACTIVE:
        raise resolution_conflict(hold.state)


def check_refund(state: HoldState, committed: int, refunded: int, amount: int) -> int:
    """The amount a refund of a hold gives back (0 = all not yet refunded): only a committed hold's
    debit, never more than it debited over all its refunds."""
    if state is not HoldState.COMMITTED:
        raise FailedPrecondition(
            "HOLD_NOT_COMMITTED", "only a committed hold's debit can be refunded", metadata={"state": state.name}
        )
    left = committed - refunded
    if left == 0:
        raise FailedPrecondition("HOLD_ALREADY_REFUNDED", "the hold's debit was refunded in full")
    if amount > left:
        raise FailedPrecondition(
            "REFUND_EXCEEDS_COMMITTED",
            f"at most {left} of the committed {committed} is left to refund",
            metadata={"refundable": str(left)},
        )
    return amount or left


def check_ttl(ttl_seconds: int, default: int, maximum: int) -> int:
    if ttl_seconds < 0 or ttl_seconds > maximum:
        raise InvalidArgument(
            "INVALID_TTL",
            f"ttl_seconds: must be between 0 and {maximum}",
            field_violations=[("ttl_seconds", f"must be between 0 and {maximum}")],
        )
    return ttl_seconds or default


# --- points expiry --------------------------------------------------------------------------

EXPIRY_REASON = "expiry"


@dataclass(frozen=True)
class ExpiringLot:
    lot_id: int
    user_id: str
    remaining: int
    transaction_id: str  # the credit that made the lot


@dataclass(frozen=True)
class LotExpiry:
    lot: ExpiringLot
    amount: int
    available_after: int


def plan_expiry(available: Mapping[str, int], lots: Sequence[ExpiringLot]) -> list[LotExpiry]:
    """What the expiry job posts for expired lots (given oldest first per user).

    A lot expires min(remaining, available): points an active hold reserved are never taken, so
    a hold can still commit. The unexpired rest stays on the lot: a commit consumes it (oldest
    first), a release returns it to available and the next run expires it.
    """
    left = dict(available)
    planned: list[LotExpiry] = []
    for lot in lots:
        amount = min(lot.remaining, left.get(lot.user_id, 0))
        if amount > 0:
            left[lot.user_id] -= amount
            planned.append(LotExpiry(lot, amount, left[lot.user_id]))
    return planned
