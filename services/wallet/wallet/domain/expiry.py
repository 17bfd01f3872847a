"""Points expiry: what the expiry job posts for expired lots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
