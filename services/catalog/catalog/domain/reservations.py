"""Reservations of stock: their states and what may be returned."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from catalog.domain.items import Price


class ReservationState(enum.IntEnum):
    ACTIVE = 1
    COMMITTED = 2
    RELEASED = 3
    EXPIRED = 4


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    item_id: str
    item_version: int
    user_id: str
    region: str
    quantity: int
    unit_price: Price
    total_price: Price
    campaign_id: str
    state: ReservationState
    expire_time: datetime
    create_time: datetime
    resolve_time: datetime | None
    took_stock: bool  # True when the item had limited stock at reservation time
    returned_quantity: int = 0  # units of a COMMITTED reservation given back (refunds); 0 otherwise

    @property
    def returnable(self) -> int:
        """Units ReturnStock may still give back: committed and not yet returned."""
        if self.state != ReservationState.COMMITTED:
            return 0
        return self.quantity - self.returned_quantity


@dataclass(frozen=True)
class StockReturn:
    """Outcome of ReturnStock: the reservation after the return and the units this call gave back."""

    reservation: Reservation
    quantity_returned: int


def return_refusal(reservation: Reservation, requested: int) -> str | None:
    """Why `requested` units (0 = all still returnable) of a reservation cannot go back to stock."""
    if reservation.state != ReservationState.COMMITTED:
        return "RESERVATION_NOT_COMMITTED"
    if reservation.returnable == 0 or requested > reservation.returnable:
        return "RETURN_EXCEEDS_SOLD"
    return None


class Resolution(enum.StrEnum):
    """What committing or releasing a reservation does; a refusal's value is the ErrorInfo reason."""

    APPLY = "APPLY"  # ACTIVE -> the target state now
    UNCHANGED = "UNCHANGED"  # already there (or, to release, expired): the reply is the reservation as it is
    RESERVATION_RELEASED = "RESERVATION_RELEASED"
    RESERVATION_EXPIRED = "RESERVATION_EXPIRED"
    RESERVATION_ALREADY_COMMITTED = "RESERVATION_ALREADY_COMMITTED"

    @property
    def is_refusal(self) -> bool:
        return self not in (Resolution.APPLY, Resolution.UNCHANGED)


def resolution(reservation: Reservation, target: ReservationState, now: datetime) -> Resolution:
    """Commit (target COMMITTED) or release (target RELEASED) `reservation` at `now`."""
    state = reservation.state
    if target == ReservationState.COMMITTED:
        if state == ReservationState.COMMITTED:
            return Resolution.UNCHANGED
        if state == ReservationState.RELEASED:
            return Resolution.RESERVATION_RELEASED
        if state == ReservationState.EXPIRED or now >= reservation.expire_time:
            # Past expire_time it is expired even before the sweeper marks it.
            return Resolution.RESERVATION_EXPIRED
        return Resolution.APPLY
    if state == ReservationState.COMMITTED:
        return Resolution.RESERVATION_ALREADY_COMMITTED
    if state != ReservationState.ACTIVE:
        return Resolution.UNCHANGED  # released or expired: the stock is back already
    return Resolution.APPLY
