"""Demo catalog: two items of each kind, regions US and DE, one sponsored campaign.

Idempotent: every CreateItem/CreateCampaign uses a fixed request id, and the catalog derives
ids from request ids (`item-` + sha256(request_id)[:20]), so the ids below are the same on
every machine and every re-run (docs/catalog.md lists them).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from points.catalog.v1 import catalog_pb2 as pb
from points.catalog.v1 import catalog_pb2_grpc
from points.common.v1.common_pb2 import CURRENCY_COINS, CURRENCY_POINTS, Price
from points_cli.seed.context import SeedContext


def _ts(year: int, month: int, day: int) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(datetime(year, month, day, tzinfo=UTC))
    return out


def _points(amount: int) -> Price:
    return Price(currency=CURRENCY_POINTS, amount=amount)


# slug -> spec; the request id is f"seed-catalog-item-{slug}".
ITEMS: dict[str, pb.ItemSpec] = {
    "golden-frame": pb.ItemSpec(
        kind=pb.ITEM_KIND_COSMETIC, title="Golden Frame", description="A golden frame around your avatar.",
        price=_points(500), cosmetic=pb.CosmeticAttributes(cosmetic_id="frame-golden"),
    ),
    "neon-badge": pb.ItemSpec(
        kind=pb.ITEM_KIND_COSMETIC, title="Neon Badge (limited edition)", description="Only 100 ever.",
        price=_points(1200), limited_stock=True, stock_total=100, per_user_limit=1,
        per_user_limit_window=pb.PER_USER_LIMIT_WINDOW_LIFETIME,
        cosmetic=pb.CosmeticAttributes(cosmetic_id="badge-neon", limited_edition=True),
    ),
    "spring-raffle": pb.ItemSpec(
        kind=pb.ITEM_KIND_RAFFLE_TICKET, title="Spring Raffle Ticket", description="Win a creator camera kit.",
        price=_points(100), regions=["US", "DE"], per_user_limit=10,
        per_user_limit_window=pb.PER_USER_LIMIT_WINDOW_DAY,
        # Sales close a day before the draw: time for the last redemptions to settle and for the
        # commitment (PrepareRaffleDraw), which must be published by the close.
        raffle=pb.RaffleAttributes(raffle_id="spring-raffle", draw_time=_ts(2029, 3, 1),
                                   sales_close_time=_ts(2029, 2, 28), winners=3),
    ),
    "berlin-raffle": pb.ItemSpec(
        kind=pb.ITEM_KIND_RAFFLE_TICKET, title="Berlin Meetup Raffle Ticket", description="Win a backstage visit.",
        price=_points(50), regions=["DE"], limited_stock=True, stock_total=500,
        raffle=pb.RaffleAttributes(raffle_id="berlin-raffle", draw_time=_ts(2029, 6, 1),
                                   sales_close_time=_ts(2029, 5, 31), winners=1),
    ),
    "rose-gift": pb.ItemSpec(
        kind=pb.ITEM_KIND_VIRTUAL_GIFT, title="Rose", description="A rose for a creator (coins).",
        price=Price(currency=CURRENCY_COINS, amount=10), gift=pb.GiftAttributes(gift_id="rose"),
    ),
    "heart-gift": pb.ItemSpec(
        kind=pb.ITEM_KIND_VIRTUAL_GIFT, title="Heart", description="A heart for a creator (points, no diamonds).",
        price=_points(200), gift=pb.GiftAttributes(gift_id="heart"),
    ),
    "ad-free-discount": pb.ItemSpec(
        kind=pb.ITEM_KIND_PREMIUM_DISCOUNT, title="50% off an Ad-free Month", description="Discount code.",
        price=_points(2000), regions=["US"], per_user_limit=1, per_user_limit_window=pb.PER_USER_LIMIT_WINDOW_MONTH,
        discount=pb.DiscountAttributes(percent_off_bps=5000, target_feature="ad_free_month"),
        # Single use, valid for 30 days from the redemption.
        entitlement_terms=pb.EntitlementTerms(max_uses=1, valid_for_seconds=30 * 86400),
    ),
    "hd-upload-discount": pb.ItemSpec(
        kind=pb.ITEM_KIND_PREMIUM_DISCOUNT, title="20% off HD Uploads", description="Discount code.",
        price=_points(800), regions=["DE"],
        discount=pb.DiscountAttributes(percent_off_bps=2000, target_feature="hd_uploads"),
    ),
    "live-concert-pass": pb.ItemSpec(
        kind=pb.ITEM_KIND_EVENT_ACCESS, title="Creator Live Concert Pass", description="One entry.",
        price=_points(3000), regions=["US"], limited_stock=True, stock_total=50,
        event_access=pb.EventAccessAttributes(event_id="creator-live-concert"),
        # One check-in; the pass expires when the concert is over.
        entitlement_terms=pb.EntitlementTerms(max_uses=1, valid_until=_ts(2029, 7, 2)),
    ),
    "berlin-meetup-pass": pb.ItemSpec(
        kind=pb.ITEM_KIND_EVENT_ACCESS, title="Berlin Creator Meetup Pass", description="One entry.",
        price=_points(1500), regions=["DE"], limited_stock=True, stock_total=30,
        event_access=pb.EventAccessAttributes(event_id="berlin-creator-meetup"),
    ),
}

CAMPAIGN_REQUEST_ID = "seed-catalog-campaign-summer-sale"


def request_id(slug: str) -> str:
    return f"seed-catalog-item-{slug}"


def item_id(slug: str) -> str:
    """The id the catalog gives the seeded item (same derivation as the service)."""
    return f"item-{hashlib.sha256(request_id(slug).encode()).hexdigest()[:20]}"


def campaign_id() -> str:
    return f"campaign-{hashlib.sha256(CAMPAIGN_REQUEST_ID.encode()).hexdigest()[:20]}"


# What the redemption demo redeems.
DEMO_RAFFLE_TICKET = item_id("spring-raffle")
DEMO_POINTS_COSMETIC = item_id("golden-frame")
DEMO_COINS_GIFT = item_id("rose-gift")


async def _create(call: Any, request: Any, md: Any) -> None:
    try:
        await call(request, metadata=md, timeout=10)
    except grpc.aio.AioRpcError as exc:
        # Seeded by an older version of this file: keep what is there.
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


async def seed(ctx: SeedContext) -> None:
    stub = catalog_pb2_grpc.CatalogServiceStub(ctx.channel("catalog"))
    md = ctx.metadata("admin")
    for slug, spec in ITEMS.items():
        await _create(stub.CreateItem, pb.CreateItemRequest(request_id=request_id(slug), spec=spec), md)
    summer = pb.CampaignSpec(
        name="Summer Sale", sponsor="Acme Sodas", start_time=_ts(2025, 1, 1), end_time=_ts(2030, 1, 1),
        regions=["US"], item_ids=[item_id("golden-frame"), item_id("spring-raffle")], percent_off_bps=2000,
    )
    await _create(stub.CreateCampaign, pb.CreateCampaignRequest(request_id=CAMPAIGN_REQUEST_ID, spec=summer), md)
