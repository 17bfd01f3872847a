"""Row <-> domain mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import TypeAdapter

from catalog.domain import (
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
    ReservationState,
    Stock,
    default_terms,
)

_ATTRIBUTE_TYPES: dict[str, type] = {
    "discount": DiscountAttributes,
    "raffle": RaffleAttributes,
    "event_access": EventAccessAttributes,
    "gift": GiftAttributes,
    "cosmetic": CosmeticAttributes,
}
_ATTRIBUTE_NAMES = {cls: name for name, cls in _ATTRIBUTE_TYPES.items()}
_ADAPTERS: dict[type, TypeAdapter[Any]] = {cls: TypeAdapter(cls) for cls in _ATTRIBUTE_TYPES.values()}
_TERMS: TypeAdapter[EntitlementTerms] = TypeAdapter(EntitlementTerms)


class Row(Protocol):
    """A database row read by column name (SQLAlchemy RowMapping, asyncpg Record, or a plain dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


def attributes_to_json(attributes: Attributes | None) -> dict[str, Any]:
    if attributes is None:
        return {}
    name = _ATTRIBUTE_NAMES[type(attributes)]
    return {name: _ADAPTERS[type(attributes)].dump_python(attributes, mode="json")}


def attributes_from_json(data: Mapping[str, Any]) -> Attributes | None:
    for name, value in data.items():
        cls = _ATTRIBUTE_TYPES[name]
        result: Attributes = _ADAPTERS[cls].validate_python(value)
        return result
    return None


def terms_from_json(kind: ItemKind, data: Mapping[str, Any]) -> EntitlementTerms:
    """Stored terms; an item stored before terms existed ({}) has its kind's default."""
    return _TERMS.validate_python(data) if data else default_terms(kind)


def item_values(item: Item) -> dict[str, Any]:
    spec = item.spec
    return {
        "item_id": item.item_id,
        "version": item.version,
        "kind": int(spec.kind),
        "title": spec.title,
        "description": spec.description,
        "currency": int(spec.price.currency),
        "price_amount": spec.price.amount,
        "regions": list(spec.regions),
        "available_from": spec.available_from,
        "available_until": spec.available_until,
        "limited_stock": spec.limited_stock,
        "stock_total": item.stock.total,
        "stock_available": item.stock.available,
        "stock_reserved": item.stock.reserved,
        "stock_sold": item.stock.sold,
        "per_user_limit": spec.per_user_limit,
        "per_user_limit_window": int(spec.per_user_limit_window),
        "attributes": attributes_to_json(spec.attributes),
        "entitlement_terms": _TERMS.dump_python(spec.entitlement_terms, mode="json"),
        "archived": item.archived,
        "create_time": item.create_time,
        "update_time": item.update_time,
    }


def item_from_row(row: Row) -> Item:
    spec = ItemSpec(
        kind=ItemKind(row["kind"]),
        title=row["title"],
        description=row["description"],
        price=Price(Currency(row["currency"]), row["price_amount"]),
        regions=tuple(row["regions"]),
        available_from=row["available_from"],
        available_until=row["available_until"],
        limited_stock=row["limited_stock"],
        stock_total=row["stock_total"],
        per_user_limit=row["per_user_limit"],
        per_user_limit_window=LimitWindow(row["per_user_limit_window"]),
        attributes=attributes_from_json(row["attributes"]),
        entitlement_terms=terms_from_json(ItemKind(row["kind"]), row["entitlement_terms"]),
    )
    stock = Stock(row["stock_total"], row["stock_available"], row["stock_reserved"], row["stock_sold"])
    return Item(
        item_id=row["item_id"],
        version=row["version"],
        spec=spec,
        stock=stock,
        archived=row["archived"],
        create_time=row["create_time"],
        update_time=row["update_time"],
    )


def campaign_values(campaign: Campaign) -> dict[str, Any]:
    spec = campaign.spec
    return {
        "campaign_id": campaign.campaign_id,
        "name": spec.name,
        "sponsor": spec.sponsor,
        "start_time": spec.start_time,
        "end_time": spec.end_time,
        "regions": list(spec.regions),
        "percent_off_bps": spec.percent_off_bps,
        "fixed_currency": int(spec.fixed_price.currency) if spec.fixed_price else None,
        "fixed_amount": spec.fixed_price.amount if spec.fixed_price else None,
        "create_time": campaign.create_time,
        "ended_time": campaign.ended_time,
    }


def campaign_from_row(row: Row, item_ids: tuple[str, ...]) -> Campaign:
    fixed = (
        Price(Currency(row["fixed_currency"]), row["fixed_amount"]) if row["fixed_amount"] is not None else None
    )
    spec = CampaignSpec(
        name=row["name"],
        sponsor=row["sponsor"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        regions=tuple(row["regions"]),
        item_ids=item_ids,
        percent_off_bps=row["percent_off_bps"],
        fixed_price=fixed,
    )
    return Campaign(row["campaign_id"], spec, row["create_time"], row["ended_time"])


def reservation_values(r: Reservation) -> dict[str, Any]:
    return {
        "reservation_id": r.reservation_id,
        "item_id": r.item_id,
        "item_version": r.item_version,
        "user_id": r.user_id,
        "region": r.region,
        "quantity": r.quantity,
        "currency": int(r.unit_price.currency),
        "unit_amount": r.unit_price.amount,
        "total_amount": r.total_price.amount,
        "campaign_id": r.campaign_id,
        "state": int(r.state),
        "took_stock": r.took_stock,
        "expire_time": r.expire_time,
        "create_time": r.create_time,
        "resolve_time": r.resolve_time,
        "returned_quantity": r.returned_quantity,
    }


def reservation_from_row(row: Row) -> Reservation:
    currency = Currency(row["currency"])
    return Reservation(
        reservation_id=row["reservation_id"],
        item_id=row["item_id"],
        item_version=row["item_version"],
        user_id=row["user_id"],
        region=row["region"],
        quantity=row["quantity"],
        unit_price=Price(currency, row["unit_amount"]),
        total_price=Price(currency, row["total_amount"]),
        campaign_id=row["campaign_id"],
        state=ReservationState(row["state"]),
        expire_time=row["expire_time"],
        create_time=row["create_time"],
        resolve_time=row["resolve_time"],
        took_stock=row["took_stock"],
        returned_quantity=row["returned_quantity"],
    )
