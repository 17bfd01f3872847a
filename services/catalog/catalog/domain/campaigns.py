"""Campaigns and pricing: the best price for a user among the base price and running campaigns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from catalog.domain.items import Item, Price
from catalog.domain.windows import is_in_window, offered_in


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
class PricedUnit:
    unit_price: Price
    campaign_id: str  # "" when the base price applies


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
