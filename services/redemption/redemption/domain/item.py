"""The catalog item as a saga saw it: its kind and the facts the saga and its entitlements follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ItemKind(StrEnum):
    PREMIUM_DISCOUNT = "PREMIUM_DISCOUNT"
    VIRTUAL_GIFT = "VIRTUAL_GIFT"
    RAFFLE_TICKET = "RAFFLE_TICKET"
    COSMETIC = "COSMETIC"
    EVENT_ACCESS = "EVENT_ACCESS"


@dataclass(frozen=True)
class ItemSnapshot:
    """What the saga needs to know about the catalog item, read in the QUOTE step."""

    kind: ItemKind
    currency: str  # "POINTS" or "COINS"
    raffle_id: str = ""
    gift_id: str = ""
    cosmetic_id: str = ""
    event_id: str = ""
    sales_close_time: datetime | None = None  # a raffle's ticket sales close (the catalog's, or its draw time)
    # The item's entitlement terms (catalog EntitlementTerms). None: a saga stored before terms existed,
    # whose entitlements get the kind's default (DEFAULT_USES).
    max_uses: int | None = None
    unlimited_uses: bool = False
    valid_until: datetime | None = None
    valid_for_seconds: int = 0
    # False when the catalog has nothing to lock for this saga: unlimited stock and no per-user limit (as the
    # Quote that priced the saga saw it). Such a saga never reserves, commits or returns stock. True for sagas
    # stored before this existed: they reserved.
    reserves_stock: bool = True

