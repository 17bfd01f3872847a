"""Catalog rules: items, campaign pricing, availability, per-user windows and stock events.

Pure Python: no grpc, no sqlalchemy, no database driver (an import-linter contract holds it).
The submodules hold the rules; this package names them for the layers above.
"""

from __future__ import annotations

from catalog.domain.availability import Quote, Unavailable, quote, unavailable_reason, user_allowance
from catalog.domain.campaigns import (
    Campaign,
    CampaignSpec,
    PricedUnit,
    applies,
    campaign_unit_price,
    discounted,
    has_ended,
    resolve_price,
)
from catalog.domain.items import (
    ATTRIBUTES_KIND,
    DEFAULT_TERMS,
    MAX_USES,
    MAX_VALID_FOR_SECONDS,
    Attributes,
    CosmeticAttributes,
    Currency,
    DiscountAttributes,
    EntitlementTerms,
    EventAccessAttributes,
    GiftAttributes,
    Item,
    ItemKind,
    ItemSpec,
    LimitWindow,
    Price,
    RaffleAttributes,
    Stock,
    default_terms,
    restocked,
    terms_violation,
)
from catalog.domain.reservations import (
    Reservation,
    ReservationState,
    Resolution,
    StockReturn,
    resolution,
    return_refusal,
)
from catalog.domain.stock_events import StockEvent, StockLow, StockSoldOut, stock_events
from catalog.domain.windows import is_in_window, limit_window_start, offered_in

__all__ = [
    "ATTRIBUTES_KIND", "DEFAULT_TERMS", "MAX_USES", "MAX_VALID_FOR_SECONDS", "Attributes", "Campaign",
    "CampaignSpec", "CosmeticAttributes", "Currency", "DiscountAttributes", "EntitlementTerms",
    "EventAccessAttributes", "GiftAttributes", "Item", "ItemKind", "ItemSpec", "LimitWindow", "Price",
    "PricedUnit", "Quote", "RaffleAttributes", "Reservation", "ReservationState", "Resolution", "Stock", "StockEvent",
    "StockLow", "StockReturn", "StockSoldOut",
    "Unavailable", "applies", "campaign_unit_price", "default_terms", "discounted", "has_ended",
    "is_in_window", "limit_window_start", "offered_in", "quote", "resolution", "resolve_price", "restocked",
    "return_refusal", "stock_events", "terms_violation", "unavailable_reason", "user_allowance",
]
