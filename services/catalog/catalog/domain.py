"""Catalog rules: items, campaign pricing, availability and per-user windows.

Pure Python: no grpc, no sqlalchemy. Enum values equal the proto numbers so the transport
maps them one to one; the rules here never look at the wire format.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


class ItemKind(enum.IntEnum):
    PREMIUM_DISCOUNT = 1
    VIRTUAL_GIFT = 2
    RAFFLE_TICKET = 3
    COSMETIC = 4
    EVENT_ACCESS = 5


class Currency(enum.IntEnum):
    POINTS = 1
    COINS = 2


class LimitWindow(enum.IntEnum):
    LIFETIME = 1
    DAY = 2
    WEEK = 3
    MONTH = 4


class ReservationState(enum.IntEnum):
    ACTIVE = 1
    COMMITTED = 2
    RELEASED = 3
    EXPIRED = 4


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
class Price:
    currency: Currency
    amount: int


# Kind-specific attributes; `kind_of` says which kind each belongs to.
@dataclass(frozen=True)
class DiscountAttributes:
    percent_off_bps: int
    target_feature: str


@dataclass(frozen=True)
class RaffleAttributes:
    raffle_id: str
    draw_time: datetime | None
    winners: int
    # Ticket sales close here (at or before draw_time); None = at draw_time, so items stored before
    # the field existed close at their draw.
    sales_close_time: datetime | None = None

    @property
    def sales_close(self) -> datetime | None:
        """When ticket sales close (None: never, a raffle without a draw time)."""
        return self.sales_close_time or self.draw_time

    def is_closed(self, now: datetime) -> bool:
        """Sales are open strictly before the close instant (half-open, like every window)."""
        return self.sales_close is not None and now >= self.sales_close


@dataclass(frozen=True)
class EventAccessAttributes:
    event_id: str


@dataclass(frozen=True)
class GiftAttributes:
    gift_id: str


@dataclass(frozen=True)
class CosmeticAttributes:
    cosmetic_id: str
    limited_edition: bool


Attributes = DiscountAttributes | RaffleAttributes | EventAccessAttributes | GiftAttributes | CosmeticAttributes

ATTRIBUTES_KIND: dict[type, ItemKind] = {
    DiscountAttributes: ItemKind.PREMIUM_DISCOUNT,
    RaffleAttributes: ItemKind.RAFFLE_TICKET,
    EventAccessAttributes: ItemKind.EVENT_ACCESS,
    GiftAttributes: ItemKind.VIRTUAL_GIFT,
    CosmeticAttributes: ItemKind.COSMETIC,
}


@dataclass(frozen=True)
class EntitlementTerms:
    """How an item's entitlement is used and how long it lives; redemption copies them onto each
    entitlement at grant, so an item update never changes what was already granted."""

    max_uses: int = 0  # 0: unlimited_uses, or not consumable (raffle tickets, gift records)
    unlimited_uses: bool = False
    valid_until: datetime | None = None  # absolute end (exclusive)
    valid_for_seconds: int = 0  # from grant; 0 = no limit


# Kinds whose entitlements ConsumeEntitlement uses: a code is applied once, a pass checked in once, a
# cosmetic shown as often as the user likes. Raffle tickets (consumed by the draw) and gift records take no terms.
DEFAULT_TERMS: dict[ItemKind, EntitlementTerms] = {
    ItemKind.PREMIUM_DISCOUNT: EntitlementTerms(max_uses=1),
    ItemKind.EVENT_ACCESS: EntitlementTerms(max_uses=1),
    ItemKind.COSMETIC: EntitlementTerms(unlimited_uses=True),
}
MAX_USES = 1_000_000
MAX_VALID_FOR_SECONDS = 10 * 365 * 24 * 3600


def default_terms(kind: ItemKind) -> EntitlementTerms:
    return DEFAULT_TERMS.get(kind, EntitlementTerms())


def terms_violation(kind: ItemKind, terms: EntitlementTerms) -> tuple[str, str] | None:
    """(field, description) of the first rule the terms break for an item of `kind`; None when valid."""
    if kind not in DEFAULT_TERMS:
        return "", f"{kind.name} items take no entitlement terms"
    if terms.unlimited_uses and terms.max_uses:
        return "max_uses", "must be 0 with unlimited_uses"
    if not terms.unlimited_uses and not 1 <= terms.max_uses <= MAX_USES:
        return "max_uses", f"must be between 1 and {MAX_USES} unless unlimited_uses is set"
    if not 0 <= terms.valid_for_seconds <= MAX_VALID_FOR_SECONDS:
        return "valid_for_seconds", f"must be between 0 and {MAX_VALID_FOR_SECONDS}"
    return None


@dataclass(frozen=True)
class ItemSpec:
    """The writable fields of an item (create, and full replace on update)."""

    kind: ItemKind
    title: str
    description: str
    price: Price
    regions: tuple[str, ...]
    available_from: datetime | None
    available_until: datetime | None
    limited_stock: bool
    stock_total: int
    per_user_limit: int
    per_user_limit_window: LimitWindow
    attributes: Attributes | None
    entitlement_terms: EntitlementTerms = EntitlementTerms()


@dataclass(frozen=True)
class Stock:
    """Counters of a limited item; available + reserved + sold == total always."""

    total: int
    available: int
    reserved: int
    sold: int


@dataclass(frozen=True)
class Item:
    item_id: str
    version: int
    spec: ItemSpec
    stock: Stock
    archived: bool
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    sponsor: str
    start_time: datetime
    end_time: datetime
    regions: tuple[str, ...]
    item_ids: tuple[str, ...]
    percent_off_bps: int | None  # exactly one of percent_off_bps / fixed_price is set
    fixed_price: Price | None


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    spec: CampaignSpec
    create_time: datetime
    ended_time: datetime | None = None  # ended early by an admin: applies only before it


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


@dataclass(frozen=True)
class PricedUnit:
    unit_price: Price
    campaign_id: str  # "" when the base price applies


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


# --- windows ---------------------------------------------------------------------------------


def is_in_window(start: datetime | None, end: datetime | None, now: datetime) -> bool:
    """Half-open [start, end): the start instant is in, the end instant is out."""
    return (start is None or start <= now) and (end is None or now < end)


def offered_in(regions: Sequence[str], region: str) -> bool:
    return not regions or region in regions


def limit_window_start(window: LimitWindow, now: datetime) -> datetime | None:
    """Start of the per-user window containing `now` (UTC calendar); None = lifetime."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == LimitWindow.DAY:
        return day
    if window == LimitWindow.WEEK:
        return day - timedelta(days=day.weekday())  # ISO week starts on Monday
    if window == LimitWindow.MONTH:
        return day.replace(day=1)
    return None


# --- pricing ---------------------------------------------------------------------------------


def discounted(base: int, percent_off_bps: int) -> int:
    """Rounds in the platform's favour: the discount is floored, so the price is not."""
    return base - (base * percent_off_bps) // 10_000


def campaign_unit_price(campaign: CampaignSpec, base: Price) -> int | None:
    """The campaign's unit price for an item, or None when the rule does not fit its currency."""
    if campaign.percent_off_bps is not None:
        return discounted(base.amount, campaign.percent_off_bps)
    if campaign.fixed_price is not None and campaign.fixed_price.currency == base.currency:
        return campaign.fixed_price.amount
    return None


def applies(campaign: Campaign, item_id: str, region: str, now: datetime) -> bool:
    spec = campaign.spec
    return (
        item_id in spec.item_ids
        and offered_in(spec.regions, region)
        and is_in_window(spec.start_time, spec.end_time, now)
        and (campaign.ended_time is None or now < campaign.ended_time)
    )


def has_ended(campaign: Campaign, now: datetime) -> bool:
    """Past its end_time or ended early; a running or future campaign can still be ended."""
    return campaign.ended_time is not None or now >= campaign.spec.end_time


def resolve_price(item: Item, campaigns: Iterable[Campaign], region: str, now: datetime) -> PricedUnit:
    """Best price for the user: the lowest of the base price and every applicable campaign price.

    A campaign whose price is not below the base price is not applied. Ties between campaigns
    go to the earliest created one (then the smaller id), so the answer is deterministic.
    """
    base = item.spec.price
    best = PricedUnit(base, "")
    candidates = sorted(
        (c for c in campaigns if applies(c, item.item_id, region, now)),
        key=lambda c: (c.create_time, c.campaign_id),
    )
    for campaign in candidates:
        amount = campaign_unit_price(campaign.spec, base)
        if amount is not None and amount < best.unit_price.amount:
            best = PricedUnit(Price(base.currency, amount), campaign.campaign_id)
    return best


# --- availability ----------------------------------------------------------------------------


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


def restocked(stock: Stock, new_total: int) -> Stock | None:
    """Counters after an admin changes the total; None when it would drop below reserved + sold."""
    committed = stock.reserved + stock.sold
    if new_total < committed:
        return None
    return Stock(new_total, new_total - committed, stock.reserved, stock.sold)


def return_refusal(reservation: Reservation, requested: int) -> str | None:
    """Why `requested` units (0 = all still returnable) of a reservation cannot go back to stock."""
    if reservation.state != ReservationState.COMMITTED:
        return "RESERVATION_NOT_COMMITTED"
    if reservation.returnable == 0 or requested > reservation.returnable:
        return "RETURN_EXCEEDS_SOLD"
    return None
