"""Hold resolution: commit, release and refund rules, and the hold's time to live."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from points_platform.errors import FailedPrecondition, InvalidArgument


class HoldState(enum.IntEnum):
    ACTIVE = 1
    COMMITTED = 2
    RELEASED = 3
    EXPIRED = 4


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
