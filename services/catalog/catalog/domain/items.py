"""Items: kinds, prices, kind-specific attributes, entitlement terms and stock counters.

Enum values equal the proto numbers so the transport maps them one to one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


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


@dataclass(frozen=True)
class Price:
    currency: Currency
    amount: int


# Kind-specific attributes; `ATTRIBUTES_KIND` says which kind each belongs to.
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


def restocked(stock: Stock, new_total: int) -> Stock | None:
    """Counters after an admin changes the total; None when it would drop below reserved + sold."""
    committed = stock.reserved + stock.sold
    if new_total < committed:
        return None
    return Stock(new_total, new_total - committed, stock.reserved, stock.sold)
