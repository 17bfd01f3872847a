"""Proto <-> domain mapping and edge validation of catalog requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf.timestamp_pb2 import Timestamp

from catalog.domain import (
    ATTRIBUTES_KIND,
    Attributes,
    Campaign,
    CampaignSpec,
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
    Reservation,
    default_terms,
    terms_violation,
)
from points.catalog.v1 import catalog_pb2 as pb
from points.common.v1 import common_pb2
from points_platform.errors import invalid_field
from points_platform.validation import require_id, require_positive, require_region, require_text

MAX_PRICE = 10**12  # so that price * MAX_QUANTITY stays far inside int64
MAX_QUANTITY = 10_000
MAX_STOCK = 10**12
MAX_PER_USER_LIMIT = 1_000_000
MAX_REGIONS = 300
MAX_CAMPAIGN_ITEMS = 1_000
# Timestamps must be within years 1..9999 to be representable.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


# --- validation helpers ----------------------------------------------------------------------


def timestamp(field: str, ts: Timestamp) -> datetime:
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
        raise invalid_field(field, "is not a valid timestamp")
    return ts.ToDatetime(tzinfo=UTC)


def optional_timestamp(msg: Any, name: str, field: str) -> datetime | None:
    return timestamp(field, getattr(msg, name)) if msg.HasField(name) else None


def regions(field: str, values: Any) -> tuple[str, ...]:
    if len(values) > MAX_REGIONS:
        raise invalid_field(field, f"at most {MAX_REGIONS} regions")
    for n, value in enumerate(values):
        require_region(f"{field}[{n}]", value)
    return tuple(sorted(set(values)))


def price(field: str, msg: common_pb2.Price) -> Price:
    if cast(int, msg.currency) not in (Currency.POINTS, Currency.COINS):
        raise invalid_field(f"{field}.currency", "must be POINTS or COINS", "CURRENCY_NOT_ALLOWED")
    require_positive(f"{field}.amount", msg.amount, MAX_PRICE)
    return Price(Currency(msg.currency), msg.amount)


def quantity(value: int) -> int:
    return require_positive("quantity", value, MAX_QUANTITY)


def window_end_after_start(start: datetime | None, end: datetime | None, field: str) -> None:
    if start is not None and end is not None and end <= start:
        raise invalid_field(field, "must be after the start")


# --- items -----------------------------------------------------------------------------------


def _attributes(spec: pb.ItemSpec) -> Attributes:
    case = spec.WhichOneof("attributes")
    if case is None:
        raise invalid_field("spec.attributes", "kind-specific attributes are required")
    if case == "discount":
        d = spec.discount
        require_positive("spec.discount.percent_off_bps", d.percent_off_bps, 10_000)
        return DiscountAttributes(d.percent_off_bps, require_id("spec.discount.target_feature", d.target_feature))
    if case == "raffle":
        r = spec.raffle
        require_positive("spec.raffle.winners", r.winners, 10_000)
        draw_time = optional_timestamp(r, "draw_time", "spec.raffle.draw_time")
        sales_close = optional_timestamp(r, "sales_close_time", "spec.raffle.sales_close_time")
        if sales_close is not None and (draw_time is None or sales_close > draw_time):
            raise invalid_field("spec.raffle.sales_close_time", "needs draw_time and must be at or before it")
        return RaffleAttributes(require_id("spec.raffle.raffle_id", r.raffle_id), draw_time, r.winners, sales_close)
    if case == "event_access":
        return EventAccessAttributes(require_id("spec.event_access.event_id", spec.event_access.event_id))
    if case == "gift":
        return GiftAttributes(require_id("spec.gift.gift_id", spec.gift.gift_id))
    c = spec.cosmetic
    return CosmeticAttributes(require_id("spec.cosmetic.cosmetic_id", c.cosmetic_id), c.limited_edition)


def entitlement_terms(spec: pb.ItemSpec, kind: ItemKind) -> EntitlementTerms:
    """The spec's terms, or the kind's default when it left them unset."""
    if not spec.HasField("entitlement_terms"):
        return default_terms(kind)
    t = spec.entitlement_terms
    terms = EntitlementTerms(
        max_uses=t.max_uses, unlimited_uses=t.unlimited_uses,
        valid_until=optional_timestamp(t, "valid_until", "spec.entitlement_terms.valid_until"),
        valid_for_seconds=t.valid_for_seconds,
    )
    violation = terms_violation(kind, terms)
    if violation is not None:
        field = ".".join(filter(None, ("spec.entitlement_terms", violation[0])))
        raise invalid_field(field, violation[1], "INVALID_ENTITLEMENT_TERMS")
    return terms


def item_spec(spec: pb.ItemSpec) -> ItemSpec:
    if spec.kind not in ItemKind._value2member_map_:
        raise invalid_field("spec.kind", "must be one of the item kinds")
    kind = ItemKind(spec.kind)
    attributes = _attributes(spec)
    if ATTRIBUTES_KIND[type(attributes)] != kind:
        raise invalid_field("spec.attributes", f"do not match kind {kind.name}")
    available_from = optional_timestamp(spec, "available_from", "spec.available_from")
    available_until = optional_timestamp(spec, "available_until", "spec.available_until")
    window_end_after_start(available_from, available_until, "spec.available_until")
    if spec.limited_stock:
        if not 0 <= spec.stock_total <= MAX_STOCK:
            raise invalid_field("spec.stock_total", f"must be between 0 and {MAX_STOCK}")
    elif spec.stock_total != 0:
        raise invalid_field("spec.stock_total", "must be 0 unless limited_stock is set")
    if not 0 <= spec.per_user_limit <= MAX_PER_USER_LIMIT:
        raise invalid_field("spec.per_user_limit", f"must be between 0 and {MAX_PER_USER_LIMIT}")
    if spec.per_user_limit_window not in range(0, 5):
        raise invalid_field("spec.per_user_limit_window", "must be one of the limit windows")
    return ItemSpec(
        kind=kind,
        title=require_text("spec.title", spec.title, 200, required=True),
        description=require_text("spec.description", spec.description, 2000),
        price=price("spec.price", spec.price),
        regions=regions("spec.regions", spec.regions),
        available_from=available_from,
        available_until=available_until,
        limited_stock=spec.limited_stock,
        stock_total=spec.stock_total,
        per_user_limit=spec.per_user_limit,
        per_user_limit_window=LimitWindow(spec.per_user_limit_window or LimitWindow.LIFETIME),
        attributes=attributes,
        entitlement_terms=entitlement_terms(spec, kind),
    )


def _set_ts(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def price_pb(value: Price) -> common_pb2.Price:
    return common_pb2.Price(currency=cast("common_pb2.Currency.ValueType", int(value.currency)), amount=value.amount)


def _set_attributes(msg: Any, attributes: Attributes | None) -> None:
    if isinstance(attributes, DiscountAttributes):
        msg.discount.CopyFrom(pb.DiscountAttributes(**vars(attributes)))
    elif isinstance(attributes, RaffleAttributes):
        msg.raffle.CopyFrom(pb.RaffleAttributes(raffle_id=attributes.raffle_id, winners=attributes.winners))
        _set_ts(msg.raffle.draw_time, attributes.draw_time)
        _set_ts(msg.raffle.sales_close_time, attributes.sales_close_time)
    elif isinstance(attributes, EventAccessAttributes):
        msg.event_access.CopyFrom(pb.EventAccessAttributes(event_id=attributes.event_id))
    elif isinstance(attributes, GiftAttributes):
        msg.gift.CopyFrom(pb.GiftAttributes(gift_id=attributes.gift_id))
    elif isinstance(attributes, CosmeticAttributes):
        msg.cosmetic.CopyFrom(pb.CosmeticAttributes(**vars(attributes)))


def item_pb(item: Item) -> pb.Item:
    spec = item.spec
    msg = pb.Item(
        item_id=item.item_id,
        version=item.version,
        kind=cast("pb.ItemKind.ValueType", int(spec.kind)),
        title=spec.title,
        description=spec.description,
        price=price_pb(spec.price),
        regions=list(spec.regions),
        limited_stock=spec.limited_stock,
        stock_total=item.stock.total,
        stock_available=item.stock.available,
        stock_reserved=item.stock.reserved,
        stock_sold=item.stock.sold,
        per_user_limit=spec.per_user_limit,
        per_user_limit_window=cast("pb.PerUserLimitWindow.ValueType", int(spec.per_user_limit_window)),
        archived=item.archived,
    )
    _set_ts(msg.available_from, spec.available_from)
    _set_ts(msg.available_until, spec.available_until)
    _set_ts(msg.create_time, item.create_time)
    _set_ts(msg.update_time, item.update_time)
    _set_attributes(msg, spec.attributes)
    terms = spec.entitlement_terms
    msg.entitlement_terms.CopyFrom(pb.EntitlementTerms(
        max_uses=terms.max_uses, unlimited_uses=terms.unlimited_uses, valid_for_seconds=terms.valid_for_seconds))
    _set_ts(msg.entitlement_terms.valid_until, terms.valid_until)
    return msg


# --- campaigns -------------------------------------------------------------------------------


def campaign_spec(spec: pb.CampaignSpec) -> CampaignSpec:
    if not spec.HasField("start_time") or not spec.HasField("end_time"):
        raise invalid_field("spec.start_time", "start_time and end_time are required")
    start = timestamp("spec.start_time", spec.start_time)
    end = timestamp("spec.end_time", spec.end_time)
    window_end_after_start(start, end, "spec.end_time")
    if not 1 <= len(spec.item_ids) <= MAX_CAMPAIGN_ITEMS:
        raise invalid_field("spec.item_ids", f"1 to {MAX_CAMPAIGN_ITEMS} items are required")
    for n, item_id in enumerate(spec.item_ids):
        require_id(f"spec.item_ids[{n}]", item_id)
    if len(set(spec.item_ids)) != len(spec.item_ids):
        raise invalid_field("spec.item_ids", "must not repeat an item")
    rule = spec.WhichOneof("price_rule")
    percent: int | None = None
    fixed: Price | None = None
    if rule == "percent_off_bps":
        # Below 100% so that a discounted price is never 0 (floor of the discount).
        percent = require_positive("spec.percent_off_bps", spec.percent_off_bps, 9_999)
    elif rule == "fixed_price":
        fixed = price("spec.fixed_price", spec.fixed_price)
    else:
        raise invalid_field("spec.price_rule", "percent_off_bps or fixed_price is required")
    return CampaignSpec(
        name=require_text("spec.name", spec.name, 200, required=True),
        sponsor=require_text("spec.sponsor", spec.sponsor, 200),
        start_time=start,
        end_time=end,
        regions=regions("spec.regions", spec.regions),
        item_ids=tuple(spec.item_ids),
        percent_off_bps=percent,
        fixed_price=fixed,
    )


def campaign_pb(campaign: Campaign) -> pb.Campaign:
    spec = campaign.spec
    msg = pb.Campaign(
        campaign_id=campaign.campaign_id,
        name=spec.name,
        sponsor=spec.sponsor,
        regions=list(spec.regions),
        item_ids=list(spec.item_ids),
    )
    if spec.percent_off_bps is not None:
        msg.percent_off_bps = spec.percent_off_bps
    if spec.fixed_price is not None:
        msg.fixed_price.CopyFrom(price_pb(spec.fixed_price))
    _set_ts(msg.start_time, spec.start_time)
    _set_ts(msg.end_time, spec.end_time)
    _set_ts(msg.create_time, campaign.create_time)
    if campaign.ended_time is not None:
        _set_ts(msg.ended_time, campaign.ended_time)
    return msg


# --- reservations and quotes -----------------------------------------------------------------


def reservation_pb(r: Reservation) -> pb.Reservation:
    msg = pb.Reservation(
        reservation_id=r.reservation_id,
        item_id=r.item_id,
        item_version=r.item_version,
        user_id=r.user_id,
        region=r.region,
        quantity=r.quantity,
        unit_price=price_pb(r.unit_price),
        total_price=price_pb(r.total_price),
        campaign_id=r.campaign_id,
        state=cast("pb.ReservationState.ValueType", int(r.state)),
        returned_quantity=r.returned_quantity,
    )
    _set_ts(msg.expire_time, r.expire_time)
    _set_ts(msg.create_time, r.create_time)
    _set_ts(msg.resolve_time, r.resolve_time)
    return msg


_RESERVATION_REPLIES: dict[str, type[pb.ReserveStockResponse | pb.CommitReservationResponse
                                     | pb.ReleaseReservationResponse]] = {
    "ReserveStock": pb.ReserveStockResponse,
    "CommitReservation": pb.CommitReservationResponse,
    "ReleaseReservation": pb.ReleaseReservationResponse,
}


def reservation_reply(method: str, r: Reservation) -> bytes:
    """The reply of a reservation RPC as the idempotency table keeps it (`use_cases.ports.ReservationReply`):
    the hot path stores it in the statement that makes the effect."""
    return _RESERVATION_REPLIES[method](reservation=reservation_pb(r)).SerializeToString(deterministic=True)
