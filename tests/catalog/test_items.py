"""Items: create, read, versioned update, idempotency, listing with filters and pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc

from points.catalog.v1 import catalog_pb2 as pb
from points.common.v1 import common_pb2
from tests.catalog.conftest import COINS, POINTS, START, Harness, item_spec, rid
from tests.support.rpc import expect_error, ts

NOT_FOUND = grpc.StatusCode.NOT_FOUND


async def test_create_then_get_returns_version_one_with_attributes(h: Harness) -> None:
    item = await h.create_item(
        kind=pb.ITEM_KIND_RAFFLE_TICKET,
        title="Spring raffle",
        raffle=pb.RaffleAttributes(raffle_id="spring-2026", winners=3, draw_time=ts(START + timedelta(days=7))),
        regions=["US", "DE"],
        limited_stock=True,
        stock_total=10,
    )
    assert item.version == 1 and item.item_id.startswith("item-")
    assert list(item.regions) == ["DE", "US"]
    assert (item.stock_total, item.stock_available, item.stock_reserved, item.stock_sold) == (10, 10, 0, 0)
    got = (await h.call("GetItem", pb.GetItemRequest(item_id=item.item_id), caller="app")).item
    assert got == item
    assert got.raffle.raffle_id == "spring-2026" and got.raffle.draw_time.ToDatetime().year == 2026


async def test_same_request_id_returns_the_original_item_even_after_an_update(h: Harness) -> None:
    request = pb.CreateItemRequest(request_id=rid(), spec=item_spec(title="Original"))
    first = (await h.call("CreateItem", request)).item
    await h.call("UpdateItem", pb.UpdateItemRequest(
        request_id=rid(), item_id=first.item_id, expected_version=1, spec=item_spec(title="Renamed")))
    again = (await h.call("CreateItem", request)).item
    assert again == first and again.title == "Original"
    other = pb.CreateItemRequest(request_id=request.request_id, spec=item_spec(title="Different"))
    await expect_error(h.call("CreateItem", other), grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


async def test_update_with_an_old_version_is_aborted(h: Harness) -> None:
    item = await h.create_item()
    v2 = (await h.call("UpdateItem", pb.UpdateItemRequest(
        request_id=rid(), item_id=item.item_id, expected_version=1,
        spec=item_spec(price=common_pb2.Price(currency=POINTS, amount=150))))).item
    assert v2.version == 2 and v2.price.amount == 150
    stale = pb.UpdateItemRequest(request_id=rid(), item_id=item.item_id, expected_version=1, spec=item_spec())
    await expect_error(h.call("UpdateItem", stale), grpc.StatusCode.ABORTED, "VERSION_MISMATCH")
    unchecked = pb.UpdateItemRequest(request_id=rid(), item_id=item.item_id, spec=item_spec(), archived=True)
    v3 = (await h.call("UpdateItem", unchecked)).item
    assert v3.version == 3 and v3.archived


async def test_stock_total_cannot_drop_below_reserved_and_sold(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=5)
    await h.reserve(item.item_id, quantity=3)
    shrink = pb.UpdateItemRequest(request_id=rid(), item_id=item.item_id,
                                  spec=item_spec(limited_stock=True, stock_total=2))
    await expect_error(h.call("UpdateItem", shrink), grpc.StatusCode.FAILED_PRECONDITION, "STOCK_BELOW_COMMITTED")
    grow = pb.UpdateItemRequest(request_id=rid(), item_id=item.item_id,
                                spec=item_spec(limited_stock=True, stock_total=8))
    grown = (await h.call("UpdateItem", grow)).item
    assert (grown.stock_total, grown.stock_available, grown.stock_reserved) == (8, 5, 3)
    assert await h.stock_row(item.item_id) == (8, 5, 3, 0)


async def test_missing_item_is_not_found(h: Harness) -> None:
    missing = h.call("GetItem", pb.GetItemRequest(item_id="item-nope"), caller="app")
    await expect_error(missing, NOT_FOUND, "ITEM_NOT_FOUND")
    update = pb.UpdateItemRequest(request_id=rid(), item_id="item-nope", spec=item_spec())
    await expect_error(h.call("UpdateItem", update), NOT_FOUND, "ITEM_NOT_FOUND")


async def test_only_admin_creates_and_only_redemption_reserves(h: Harness) -> None:
    request = pb.CreateItemRequest(request_id=rid(), spec=item_spec())
    await expect_error(h.call("CreateItem", request, caller="app"), grpc.StatusCode.PERMISSION_DENIED)
    item = await h.create_item()
    reserve = pb.ReserveStockRequest(request_id=rid(), item_id=item.item_id, user_id="u", quantity=1, region="US")
    await expect_error(h.call("ReserveStock", reserve, caller="app"), grpc.StatusCode.PERMISSION_DENIED)
    await expect_error(h.call("ReserveStock", reserve, caller="admin"), grpc.StatusCode.PERMISSION_DENIED)


async def test_invalid_specs_are_rejected_with_field_violations(h: Harness) -> None:
    bad = [
        item_spec(kind=pb.ITEM_KIND_UNSPECIFIED),
        item_spec(title=""),
        item_spec(price=common_pb2.Price(currency=common_pb2.CURRENCY_DIAMONDS, amount=5)),
        item_spec(price=common_pb2.Price(currency=POINTS, amount=0)),
        item_spec(regions=["usa"]),
        item_spec(kind=pb.ITEM_KIND_EVENT_ACCESS),  # cosmetic attributes on an event pass
        item_spec(available_from=ts(START), available_until=ts(START)),
        item_spec(stock_total=5),  # stock_total without limited_stock
        item_spec(per_user_limit=-1),
        item_spec(kind=pb.ITEM_KIND_PREMIUM_DISCOUNT,
                  discount=pb.DiscountAttributes(percent_off_bps=0, target_feature="ad_free")),
    ]
    for spec in bad:
        await expect_error(h.call("CreateItem", pb.CreateItemRequest(request_id=rid(), spec=spec)),
                           grpc.StatusCode.INVALID_ARGUMENT)


async def test_list_filters_and_pages_in_stable_order(catalog: Harness, new_database) -> None:  # type: ignore[no-untyped-def]
    # A private server: listing sees every item in the database.
    import grpc as g

    from catalog.main import start
    from tests.catalog.conftest import settings

    started = await start(settings(await new_database("catalog_list")), clock=catalog.clock, run_sweeper=False)
    channel = g.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        own = Harness(started, catalog.clock, channel)
        catalog.clock.set(START)
        everywhere = await own.create_item(title="everywhere")
        catalog.clock.advance(1)  # order is (create_time, item_id)
        us_only = await own.create_item(title="us", regions=["US"])
        catalog.clock.advance(1)
        de_gift = await own.create_item(
            title="de gift", regions=["DE"], kind=pb.ITEM_KIND_VIRTUAL_GIFT, gift=pb.GiftAttributes(gift_id="rose"),
            price=common_pb2.Price(currency=COINS, amount=5))
        catalog.clock.advance(1)
        later = await own.create_item(title="later", available_from=ts(START + timedelta(days=1)))
        catalog.clock.advance(1)
        archived = await own.create_item(title="archived")
        await own.call("UpdateItem", pb.UpdateItemRequest(request_id=rid(), item_id=archived.item_id,
                                                          spec=item_spec(title="archived"), archived=True))

        async def titles(**filters: Any) -> list[str]:
            out: list[str] = []
            token = ""
            while True:
                request = pb.ListItemsRequest(page_size=2, page_token=token, **filters)
                reply = await own.call("ListItems", request, "app")
                out += [i.title for i in reply.items]
                token = reply.next_page_token
                if not token:
                    return out

        assert await titles() == ["everywhere", "us", "de gift", "later"]
        assert await titles(include_archived=True) == ["everywhere", "us", "de gift", "later", "archived"]
        assert await titles(region="US") == ["everywhere", "us", "later"]
        assert await titles(region="DE") == ["everywhere", "de gift", "later"]
        assert await titles(kind=pb.ITEM_KIND_VIRTUAL_GIFT) == ["de gift"]
        assert await titles(available_at=ts(START + timedelta(hours=1))) == ["everywhere", "us", "de gift"]
        campaign = (await own.call("CreateCampaign", pb.CreateCampaignRequest(request_id=rid(), spec=pb.CampaignSpec(
            name="c", start_time=ts(START), end_time=ts(START + timedelta(days=1)),
            item_ids=[us_only.item_id, everywhere.item_id], percent_off_bps=1000)))).campaign
        assert await titles(campaign_id=campaign.campaign_id) == ["everywhere", "us"]
        await expect_error(own.call("ListItems", pb.ListItemsRequest(page_token="garbage!"), "app"),
                           g.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
        assert de_gift.price.currency == COINS and later.title == "later"
    finally:
        await channel.close()
        await started.stop()
