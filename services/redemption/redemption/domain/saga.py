"""The redemption saga as pure rules: states, steps, what runs next, and compensation order.

No I/O here. The use cases persist a `Saga` before each step, run the step against a peer,
and feed the outcome back through `after_success` / `after_failure`, which decide the next step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from redemption.domain.item import ItemKind, ItemSnapshot
from redemption.domain.raffle import raffle_closed


class State(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


class Mode(StrEnum):
    """Which way a pending saga is moving."""

    FORWARD = "FORWARD"
    COMPENSATING = "COMPENSATING"
    REFUNDING = "REFUNDING"
    DONE = "DONE"


class Step(StrEnum):
    QUOTE = "QUOTE"
    RESERVE_STOCK = "RESERVE_STOCK"
    HOLD_FUNDS = "HOLD_FUNDS"
    GRANT_ENTITLEMENT = "GRANT_ENTITLEMENT"
    COMMIT_FUNDS = "COMMIT_FUNDS"
    COMMIT_STOCK = "COMMIT_STOCK"
    SEND_GIFT = "SEND_GIFT"
    RELEASE_FUNDS = "RELEASE_FUNDS"
    RELEASE_STOCK = "RELEASE_STOCK"
    REVOKE_ENTITLEMENT = "REVOKE_ENTITLEMENT"
    REFUND_FUNDS = "REFUND_FUNDS"
    RETURN_STOCK = "RETURN_STOCK"


class Outcome(StrEnum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


FORWARD = (
    Step.QUOTE,
    Step.RESERVE_STOCK,
    Step.HOLD_FUNDS,
    Step.GRANT_ENTITLEMENT,
    Step.COMMIT_FUNDS,
    Step.COMMIT_STOCK,
)
# Compensation runs in reverse of the forward order; refund has its own sequence.
COMPENSATION = (Step.REVOKE_ENTITLEMENT, Step.RELEASE_FUNDS, Step.RELEASE_STOCK)
REFUND = (Step.REVOKE_ENTITLEMENT, Step.REFUND_FUNDS, Step.RETURN_STOCK)

# Suffixes of the request ids sent to peers: f"{redemption_id}:{suffix}".
_REQUEST_SUFFIX = {
    Step.RESERVE_STOCK: "reserve",
    Step.HOLD_FUNDS: "hold",
    Step.COMMIT_FUNDS: "commit-funds",
    Step.SEND_GIFT: "gift",
    Step.COMMIT_STOCK: "commit-stock",
    Step.RELEASE_FUNDS: "release-funds",
    Step.RELEASE_STOCK: "release-stock",
    Step.REFUND_FUNDS: "refund",
    Step.RETURN_STOCK: "return-stock",
}


def step_request_id(redemption_id: str, step: Step, attempt: int = 0) -> str:
    """Request id of a step's peer call: stable, so a retry is the same request."""
    suffix = _REQUEST_SUFFIX[step]
    return f"{redemption_id}:{suffix}" if attempt == 0 else f"{redemption_id}:{suffix}-{attempt}"



@dataclass(frozen=True)
class Saga:
    redemption_id: str
    user_id: str
    item_id: str
    quantity: int
    region: str
    recipient_id: str
    state: State = State.PENDING
    mode: Mode = Mode.FORWARD
    step: Step | None = Step.QUOTE
    cancel_reason: str = ""
    item: ItemSnapshot | None = None
    currency: str = ""  # of the locked price: "POINTS" or "COINS"
    amount: int = 0
    reservation_id: str = ""
    reserved_at: datetime | None = None
    hold_id: str = ""
    entitlements_granted: bool = False
    funds_committed: bool = False
    stock_attempt: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def is_terminal(self) -> bool:
        return self.state is not State.PENDING

    @property
    def pays_gift_in_coins(self) -> bool:
        """Coin gifts go through the wallet's SendGift so the creator's diamonds follow the gift rate."""
        return self.item is not None and self.item.kind is ItemKind.VIRTUAL_GIFT and self.currency == "COINS"

    @property
    def past_point_of_no_return(self) -> bool:
        return self.funds_committed


class RuleViolationError(Exception):
    """A transition the saga rules forbid (a bug in the caller)."""


def after_success(saga: Saga, step: Step, **changes: object) -> Saga:
    """The saga after `step` took effect (changes: ids and snapshots the step produced)."""
    if saga.step is not step:
        raise RuleViolationError(f"{step} finished but the saga is at {saga.step}")
    updated = replace(saga, **changes)  # type: ignore[arg-type]
    if step is Step.GRANT_ENTITLEMENT:
        updated = replace(updated, entitlements_granted=True)
    if step is Step.COMMIT_FUNDS:
        updated = replace(updated, funds_committed=True)
    if step is Step.REVOKE_ENTITLEMENT:
        updated = replace(updated, entitlements_granted=False)
    if saga.mode is Mode.FORWARD:
        return _next_forward(updated, step)
    if saga.mode is Mode.COMPENSATING:
        return _next_in(updated, COMPENSATION, step, State.CANCELLED)
    if saga.mode is Mode.REFUNDING:
        return _next_in(updated, REFUND, step, State.REFUNDED)
    raise RuleViolationError(f"no step runs in mode {saga.mode}")


def after_failure(saga: Saga, step: Step, reason: str) -> Saga:
    """The saga after a peer refused `step` for a business reason (not a transient error).

    Before the funds are committed a refusal starts compensation; after, the saga only
    moves forward: a lost stock reservation is re-reserved under a new request id.
    """
    if saga.step is not step:
        raise RuleViolationError(f"{step} failed but the saga is at {saga.step}")
    if saga.mode is not Mode.FORWARD:
        raise RuleViolationError("compensation and refund steps are retried, never abandoned")
    if saga.past_point_of_no_return:
        if step is not Step.COMMIT_STOCK:
            raise RuleViolationError(f"{step} cannot fail after the funds are committed")
        return replace(saga, reservation_id="", stock_attempt=saga.stock_attempt + 1,
                       notes=(*saga.notes, reason))
    return start_compensation(saga, reason)


def after_stock_lost(saga: Saga, reason: str) -> Saga:
    """COMMIT_STOCK could not reserve again after the funds were committed (the reservation lapsed
    during an outage and the stock is gone): the item cannot be delivered. The funds come back
    through the refund sequence (revoke, give back, nothing to return) and the saga ends REFUNDED,
    so a limited item is never held by more users than its stock. A coin gift has already paid its
    creator's diamonds: it completes as before, the loss on record in the step log."""
    if saga.step is not Step.COMMIT_STOCK or not saga.past_point_of_no_return:
        raise RuleViolationError("the stock is lost only at COMMIT_STOCK, after the funds are committed")
    if saga.pays_gift_in_coins and saga.amount > 0:
        return after_success(saga, Step.COMMIT_STOCK)
    return replace(saga, mode=Mode.REFUNDING, step=REFUND[0], cancel_reason=f"STOCK_LOST: {reason}"[:128])


def start_compensation(saga: Saga, reason: str) -> Saga:
    if saga.past_point_of_no_return:
        raise RuleViolationError("the funds are committed: the saga only moves forward")
    cancelled = replace(saga, mode=Mode.COMPENSATING, cancel_reason=reason[:128])
    first = next((s for s in COMPENSATION if compensation_applies(cancelled, s)), None)
    if first is None:
        return replace(cancelled, state=State.CANCELLED, mode=Mode.DONE, step=None)
    return replace(cancelled, step=first)


# The steps that touch catalog stock: skipped when the saga's item has nothing to lock (`ItemSnapshot.reserves_stock`).
STOCK_STEPS = frozenset({Step.RESERVE_STOCK, Step.COMMIT_STOCK, Step.RETURN_STOCK})


def touches_stock(saga: Saga) -> bool:
    """Does this saga reserve catalog stock? Unknown until QUOTE has read the item (then: yes)."""
    return saga.item is None or saga.item.reserves_stock


def step_applies(saga: Saga, step: Step) -> bool:
    """Is `step` run at all for this saga (forward and refund; compensation also asks `compensation_applies`)?"""
    return step not in STOCK_STEPS or touches_stock(saga)


def skipped_steps(before: Saga, after: Saga) -> tuple[Step, ...]:
    """The steps a forward or refund transition passed over without running them (`step_applies` false), in
    order: the step log shows them SKIPPED."""
    sequence, final = {Mode.FORWARD: (FORWARD, State.COMPLETED), Mode.REFUNDING: (REFUND, State.REFUNDED)}.get(
        before.mode, ((), State.PENDING))
    if before.step not in sequence:
        return ()
    if after.mode is before.mode and after.step in sequence:
        end = sequence.index(after.step)
    elif after.state is final:
        end = len(sequence)
    else:
        return ()
    return tuple(s for s in sequence[sequence.index(before.step) + 1 : end] if not step_applies(after, s))


def holds_with_reservation(saga: Saga) -> bool:
    """Does HOLD_FUNDS run in the same round as RESERVE_STOCK? Yes when the saga was priced before it reserved
    (by its quote) and has something to pay: the hold needs only the price, the reservation only the item, so
    they are independent. A saga at RESERVE_STOCK without a price (stored before quotes priced sagas) holds
    after reserving, at the reservation's price."""
    return saga.step is Step.RESERVE_STOCK and saga.mode is Mode.FORWARD and saga.amount > 0 and not saga.hold_id


def compensation_applies(saga: Saga, step: Step) -> bool:
    """Undo only what was done: the saga records each effect before moving past its step."""
    if step is Step.REVOKE_ENTITLEMENT:
        return saga.entitlements_granted
    if step is Step.RELEASE_FUNDS:
        return bool(saga.hold_id)
    if step is Step.RELEASE_STOCK:
        return bool(saga.reservation_id)
    return True


def start_refund(saga: Saga) -> Saga:
    if saga.state is not State.COMPLETED:
        raise RuleViolationError("only completed redemptions are refunded")
    return replace(saga, state=State.PENDING, mode=Mode.REFUNDING, step=REFUND[0])


def _next_forward(saga: Saga, done: Step) -> Saga:
    return _next_in(saga, FORWARD, done, State.COMPLETED)


def _next_in(saga: Saga, sequence: tuple[Step, ...], done: Step, final: State) -> Saga:
    rest = sequence[sequence.index(done) + 1 :]
    following = next(
        (s for s in rest if step_applies(saga, s)
         and (saga.mode is not Mode.COMPENSATING or compensation_applies(saga, s))), None
    )
    if following is None:
        return replace(saga, state=final, mode=Mode.DONE, step=None)
    return replace(saga, step=following)



def refund_refusal(
    saga: Saga, completed_at: datetime | None, now: datetime, window_seconds: float, consumed: bool,
    raffle_committed: bool = False,
) -> str:
    """Why a completed redemption cannot be refunded now; "" when it can. `raffle_committed`: the ticket's
    raffle has published its seed commitment (PrepareRaffleDraw)."""
    if saga.state is State.REFUNDED:
        return "ALREADY_REFUNDED"
    if saga.state is not State.COMPLETED or completed_at is None:
        return "NOT_COMPLETED"
    if (now - completed_at).total_seconds() > window_seconds:
        return "REFUND_WINDOW_CLOSED"
    if consumed:
        return "ENTITLEMENT_CONSUMED"
    if raffle_committed and raffle_closed(saga.item, now):
        # Between the close and the draw the entries are frozen: a refund then would let someone who
        # knows the seed remove tickets to pick the winners. (An uncommitted raffle can never be
        # drawn, so its tickets stay refundable.)
        return "RAFFLE_CLOSED"
    if saga.pays_gift_in_coins:
        # The creator already holds diamonds that may be cashed out: coins cannot come back.
        return "COIN_GIFT_NOT_REFUNDABLE"
    return ""

