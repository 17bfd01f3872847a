"""Ledger operations and the planning of a batch of them against locked balances."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from points_platform.errors import DomainError, FailedPrecondition
from wallet.domain.currencies import MAX_BALANCE, Currency, Kind, PaidCredit, PaymentKey, payment_already_credited
from wallet.domain.suspension import user_suspended


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

    op: str  # what it is: "credit", "debit", "gift", "forfeit" (OP_METHODS: the RPC that asks for it)
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
        """The idempotency key: the request id is the user's (the user the transaction is filed under)."""
        return (self.user_id, self.request_id)

    @property
    def method(self) -> str:
        return OP_METHODS[self.op]


# The RPC whose request each kind of ledger op is (a Credit and a CreditBatch entry alike are Credits).
OP_METHODS = {"credit": "Credit", "debit": "Debit", "gift": "SendGift", "forfeit": "ForfeitPoints"}


AccountKey = tuple[str, Currency]


@dataclass
class PlannedOp:
    """Outcome of one op in a plan: the available balance after each user leg, or an error."""

    op: LedgerOp
    error: DomainError | None = None
    balances_after: list[tuple[str, Currency, int, int]] = field(default_factory=list)  # user, cur, avail, held
    transaction_id: str = ""  # the transaction the op makes if it applies


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
