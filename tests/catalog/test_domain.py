"""Pure catalog rules: pricing, campaign resolution, windows (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog import domain
from catalog.domain import (
    Campaign,
    CampaignSpec,
    CosmeticAttributes,
    Currency,
    Item,
    ItemKind,
    ItemSpec,
    LimitWindow,
    Price,
    RaffleAttributes,
    Reservation,
    ReservationState,
    Resolution,
    Stock,
    Unavailable,
)
from catalog.store.rows import attributes_from_json

NOW = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)  # a Wednesday


def item(**spec_fields: object) -> Item:
    fields: dict[str, object] = dict(
        kind=ItemKind.COSMETIC, title="t", description="", price=Price(Currency.POINTS, 1000), regions=(),
        available_from=None, available_until=None, limited_stock=False, stock_total=0, per_user_limit=0,
        per_user_limit_window=LimitWindow.LIFETIME, attributes=CosmeticAttributes("c", False),
    )
    fields.update(spec_fields)
    stock_total = int(fields["stock_total"])  # type: ignore[call-overload]
    return Item("item-1", 1, ItemSpec(**fields), Stock(stock_total, stock_total, 0, 0), False, NOW, NOW)  # type: ignore[arg-type]


def campaign(cid: str, *, bps: int | None = None, fixed: int | None = None, regions: tuple[str, ...] = (),
             start: datetime = NOW - timedelta(days=1), end: datetime = NOW + timedelta(days=1),
             created: datetime = NOW - timedelta(days=2), currency: Currency = Currency.POINTS) -> Campaign:
    spec = CampaignSpec(cid, "", start, end, regions, ("item-1",), bps,
                        Price(currency, fixed) if fixed is not None else None)
    return Campaign(cid, spec, created)


def test_percent_discount_floors_the_discount_in_the_platforms_favour() -> None:
    assert domain.discounted(999, 3333) == 999 - 332  # 332.96 -> 332 off
    assert domain.discounted(1, 9999) == 1


def test_best_price_wins_among_overlapping_campaigns() -> None:
    campaigns = [campaign("c10", bps=1000), campaign("fixed", fixed=850), campaign("c20", bps=2000)]
    priced = domain.resolve_price(item(), campaigns, "US", NOW)
    assert priced == domain.PricedUnit(Price(Currency.POINTS, 800), "c20")


def test_campaign_not_below_base_price_is_not_applied() -> None:
    priced = domain.resolve_price(item(), [campaign("dear", fixed=1200)], "US", NOW)
    assert priced == domain.PricedUnit(Price(Currency.POINTS, 1000), "")


def test_ties_go_to_the_earliest_created_campaign() -> None:
    older = campaign("zzz", fixed=900, created=NOW - timedelta(days=5))
    newer = campaign("aaa", bps=1000, created=NOW - timedelta(days=1))
    assert domain.resolve_price(item(), [newer, older], "US", NOW).campaign_id == "zzz"


def test_campaign_regions_windows_and_currency_limit_where_it_applies() -> None:
    de_only = campaign("de", bps=5000, regions=("DE",))
    future = campaign("future", bps=5000, start=NOW + timedelta(seconds=1))
    ended = campaign("ended", bps=5000, end=NOW)  # end is exclusive
    starts_now = campaign("now", bps=1000, start=NOW)  # start is inclusive
    coins = campaign("coins", fixed=1, currency=Currency.COINS)
    priced = domain.resolve_price(item(), [de_only, future, ended, starts_now, coins], "US", NOW)
    assert priced.campaign_id == "now"
    assert domain.resolve_price(item(), [de_only], "DE", NOW).unit_price.amount == 500


@pytest.mark.parametrize(
    ("window", "start"),
    [
        (LimitWindow.LIFETIME, None),
        (LimitWindow.DAY, datetime(2026, 3, 4, tzinfo=UTC)),
        (LimitWindow.WEEK, datetime(2026, 3, 2, tzinfo=UTC)),
        (LimitWindow.MONTH, datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_limit_windows_are_utc_calendar_periods(window: LimitWindow, start: datetime | None) -> None:
    assert domain.limit_window_start(window, NOW) == start


def test_reasons_in_order() -> None:
    assert domain.unavailable_reason(item(regions=("DE",)), "US", NOW) == Unavailable.NOT_AVAILABLE_IN_REGION
    assert domain.unavailable_reason(item(available_from=NOW + timedelta(microseconds=1)), "US", NOW) == (
        Unavailable.NOT_YET_AVAILABLE
    )
    assert domain.unavailable_reason(item(available_from=NOW), "US", NOW) is None
    assert domain.unavailable_reason(item(available_until=NOW), "US", NOW) == Unavailable.NO_LONGER_AVAILABLE
    q = domain.quote(item(limited_stock=True, stock_total=2), [], "US", 3, 0, NOW)
    assert q.unavailable == Unavailable.OUT_OF_STOCK and q.stock_remaining == 2
    q = domain.quote(item(per_user_limit=3), [], "US", 2, 2, NOW)
    assert q.unavailable == Unavailable.PER_USER_LIMIT_REACHED and q.user_remaining_allowance == 1
    q = domain.quote(item(), [], "US", 4, 0, NOW)
    assert q.is_redeemable and q.total_price.amount == 4000 and q.stock_remaining == -1


def test_restock_keeps_counters_balanced() -> None:
    stock = Stock(10, 4, 3, 3)
    assert domain.restocked(stock, 6) == Stock(6, 0, 3, 3)
    assert domain.restocked(stock, 5) is None


def test_a_raffle_stored_before_sales_close_times_closes_at_its_draw() -> None:
    draw = NOW + timedelta(days=1)
    old = attributes_from_json({"raffle": {"raffle_id": "r", "draw_time": draw.isoformat(), "winners": 1}})
    assert isinstance(old, RaffleAttributes) and old.sales_close_time is None and old.sales_close == draw
    ticket = item(kind=ItemKind.RAFFLE_TICKET, attributes=old)
    assert domain.unavailable_reason(ticket, "US", draw - timedelta(microseconds=1)) is None
    assert domain.unavailable_reason(ticket, "US", draw) is Unavailable.RAFFLE_CLOSED
    assert RaffleAttributes("r", None, 1).sales_close is None  # no draw time: never closes


@pytest.mark.parametrize(
    ("state", "expire_in", "commit", "release"),
    [
        (ReservationState.ACTIVE, 60, Resolution.APPLY, Resolution.APPLY),
        (ReservationState.ACTIVE, 0, Resolution.RESERVATION_EXPIRED, Resolution.APPLY),  # due, not yet swept
        (ReservationState.COMMITTED, 60, Resolution.UNCHANGED, Resolution.RESERVATION_ALREADY_COMMITTED),
        (ReservationState.RELEASED, 60, Resolution.RESERVATION_RELEASED, Resolution.UNCHANGED),
        (ReservationState.EXPIRED, 0, Resolution.RESERVATION_EXPIRED, Resolution.UNCHANGED),
    ],
)
def test_resolution_decides_commit_and_release_for_both_paths(
    state: ReservationState, expire_in: int, commit: Resolution, release: Resolution
) -> None:
    r = Reservation(
        reservation_id="rsv-1", item_id="i1", item_version=1, user_id="u1", region="US", quantity=1,
        unit_price=Price(Currency.POINTS, 100), total_price=Price(Currency.POINTS, 100), campaign_id="",
        state=state, expire_time=NOW + timedelta(seconds=expire_in), create_time=NOW, resolve_time=None,
        took_stock=False,
    )
    assert domain.resolution(r, ReservationState.COMMITTED, NOW) == commit
    assert domain.resolution(r, ReservationState.RELEASED, NOW) == release


def test_only_the_reasons_are_refusals() -> None:
    assert [d for d in Resolution if not d.is_refusal] == [Resolution.APPLY, Resolution.UNCHANGED]
