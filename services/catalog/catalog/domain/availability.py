"""Availability: why an item cannot be redeemed now, a user's allowance, and the quote."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from catalog.domain.campaigns import Campaign, PricedUnit, resolve_price
from catalog.domain.items import Item, ItemSpec, Price, RaffleAttributes
from catalog.domain.windows import offered_in


class Unavailable(enum.StrEnum):
    """Why an item cannot be redeemed now; the value is the ErrorInfo reason."""

    ITEM_ARCHIVED = "ITEM_ARCHIVED"
    NOT_AVAILABLE_IN_REGION = "NOT_AVAILABLE_IN_REGION"
    NOT_YET_AVAILABLE = "NOT_YET_AVAILABLE"
    NO_LONGER_AVAILABLE = "NO_LONGER_AVAILABLE"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PER_USER_LIMIT_REACHED = "PER_USER_LIMIT_REACHED"
    RAFFLE_CLOSED = "RAFFLE_CLOSED"


@dataclass(frozen=True)
class Quote:
    priced: PricedUnit
    total_price: Price
    stock_remaining: int  # -1 = unlimited
    user_remaining_allowance: int  # -1 = unlimited
    unavailable: Unavailable | None
    quote_time: datetime
    item_version: int

    @property
    def is_redeemable(self) -> bool:
        return self.unavailable is None


def unavailable_reason(item: Item, region: str, now: datetime) -> Unavailable | None:
    """The item-level reasons, in the order a user would want to hear them."""
    spec = item.spec
    if item.archived:
        return Unavailable.ITEM_ARCHIVED
    if not offered_in(spec.regions, region):
        return Unavailable.NOT_AVAILABLE_IN_REGION
    if spec.available_from is not None and now < spec.available_from:
        return Unavailable.NOT_YET_AVAILABLE
    if spec.available_until is not None and now >= spec.available_until:
        return Unavailable.NO_LONGER_AVAILABLE
    valid_until = spec.entitlement_terms.valid_until
    if valid_until is not None and now >= valid_until:
        # What it grants would be expired on arrival (the event is over).
        return Unavailable.NO_LONGER_AVAILABLE
    if isinstance(spec.attributes, RaffleAttributes) and spec.attributes.is_closed(now):
        # The entries of a raffle are final at its close: the commitment and the draw rely on it.
        return Unavailable.RAFFLE_CLOSED
    return None


def user_allowance(spec: ItemSpec, used: int) -> int:
    """Units the user may still take in the current window; -1 = no limit."""
    if spec.per_user_limit <= 0:
        return -1
    return max(spec.per_user_limit - used, 0)


def quote(
    item: Item,
    campaigns: Iterable[Campaign],
    region: str,
    quantity: int,
    used_by_user: int,
    now: datetime,
) -> Quote:
    """Price and redeemability of `quantity` units for one user now."""
    priced = resolve_price(item, campaigns, region, now)
    stock_remaining = item.stock.available if item.spec.limited_stock else -1
    allowance = user_allowance(item.spec, used_by_user)
    reason = unavailable_reason(item, region, now)
    if reason is None and stock_remaining != -1 and quantity > stock_remaining:
        reason = Unavailable.OUT_OF_STOCK
    if reason is None and allowance != -1 and quantity > allowance:
        reason = Unavailable.PER_USER_LIMIT_REACHED
    return Quote(
        priced=priced,
        total_price=Price(priced.unit_price.currency, priced.unit_price.amount * quantity),
        stock_remaining=stock_remaining,
        user_remaining_allowance=allowance,
        unavailable=reason,
        quote_time=now,
        item_version=item.version,
    )
