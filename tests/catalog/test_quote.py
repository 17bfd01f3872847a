"""Quote and ReserveStock over gRPC: every reason, campaign pricing, window edges on a ManualClock."""

from __future__ import annotations

from datetime import timedelta

import grpc

from points.catalog.v1 import catalog_pb2 as pb
from points.common.v1 import common_pb2
from points_platform.client import bearer
from tests.catalog.conftest import COINS, POINTS, START, Harness, item_spec, rid
from tests.support.credentials import TOKENS
from tests.support.rpc import expect_error, ts

FAILED = grpc.StatusCode.FAILED_PRECONDITION


async def assert_refused(h: Harness, item_id: str, reason: str, **kw: object) -> None:
    quote = await h.quote(item_id, **kw)  # type: ignore[arg-type]
    assert not quote.redeemable and quote.unavailable_reason == reason
    await expect_error(h.reserve(item_id, **kw), FAILED, reason)  # type: ignore[arg-type]


async def test_redeemable_quote_reports_price_stock_and_allowance(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=7, per_user_limit=2)
    q = await h.quote(item.item_id, quantity=2)
    assert q.redeemable and q.unavailable_reason == ""
    assert (q.unit_price.amount, q.total_price.amount, q.unit_price.currency) == (100, 200, POINTS)
    assert (q.stock_remaining, q.user_remaining_allowance, q.item_version) == (7, 2, 1)
    assert q.quote_time.ToDatetime().replace(tzinfo=START.tzinfo) == START
    unlimited = await h.quote((await h.create_item()).item_id)
    assert (unlimited.stock_remaining, unlimited.user_remaining_allowance) == (-1, -1)


async def test_each_reason(h: Harness) -> None:
    de = await h.create_item(regions=["DE"])
    await assert_refused(h, de.item_id, "NOT_AVAILABLE_IN_REGION", region="US")
    assert (await h.quote(de.item_id, region="DE")).redeemable

    soon = await h.create_item(available_from=ts(START + timedelta(seconds=10)))
    await assert_refused(h, soon.item_id, "NOT_YET_AVAILABLE")

    over = await h.create_item(available_until=ts(START))
    await assert_refused(h, over.item_id, "NO_LONGER_AVAILABLE")

    scarce = await h.create_item(limited_stock=True, stock_total=1)
    await assert_refused(h, scarce.item_id, "OUT_OF_STOCK", quantity=2)

    limited = await h.create_item(per_user_limit=1)
    await h.reserve(limited.item_id, user="alice")
    await assert_refused(h, limited.item_id, "PER_USER_LIMIT_REACHED", user="alice")
    assert (await h.quote(limited.item_id, user="bob")).redeemable

    gone = await h.create_item()
    await h.call("UpdateItem", pb.UpdateItemRequest(request_id=rid(), item_id=gone.item_id, spec=item_spec(),
                                                    archived=True))
    await assert_refused(h, gone.item_id, "ITEM_ARCHIVED")

    await expect_error(h.quote("item-missing"), grpc.StatusCode.NOT_FOUND, "ITEM_NOT_FOUND")


async def test_window_edges_follow_the_clock(h: Harness) -> None:
    opens, closes = START + timedelta(hours=1), START + timedelta(hours=2)
    item = await h.create_item(available_from=ts(opens), available_until=ts(closes))
    h.clock.set(opens - timedelta(microseconds=1))
    assert (await h.quote(item.item_id)).unavailable_reason == "NOT_YET_AVAILABLE"
    h.clock.set(opens)  # inclusive start
    assert (await h.quote(item.item_id)).redeemable
    await h.reserve(item.item_id)
    h.clock.set(closes - timedelta(microseconds=1))
    assert (await h.quote(item.item_id)).redeemable
    h.clock.set(closes)  # exclusive end
    assert (await h.quote(item.item_id)).unavailable_reason == "NO_LONGER_AVAILABLE"
    await expect_error(h.reserve(item.item_id), FAILED, "NO_LONGER_AVAILABLE")


async def test_per_user_daily_limit_resets_at_utc_midnight(h: Harness) -> None:
    item = await h.create_item(per_user_limit=2, per_user_limit_window=pb.PER_USER_LIMIT_WINDOW_DAY)
    await h.commit(await h.reserve(item.item_id, user="carol", quantity=2))
    assert (await h.quote(item.item_id, user="carol")).user_remaining_allowance == 0
    h.clock.set(START.replace(hour=23, minute=59, second=59))
    await expect_error(h.reserve(item.item_id, user="carol"), FAILED, "PER_USER_LIMIT_REACHED")
    h.clock.set(START.replace(hour=0) + timedelta(days=1))
    assert (await h.quote(item.item_id, user="carol")).user_remaining_allowance == 2
    await h.reserve(item.item_id, user="carol", quantity=2)


async def test_weekly_and_lifetime_limits(h: Harness) -> None:
    weekly = await h.create_item(per_user_limit=1, per_user_limit_window=pb.PER_USER_LIMIT_WINDOW_WEEK)
    lifetime = await h.create_item(per_user_limit=1)
    for item in (weekly, lifetime):
        await h.commit(await h.reserve(item.item_id, user="dan"))
    h.clock.set(START + timedelta(days=6))  # Sunday of the same ISO week
    for item in (weekly, lifetime):
        await expect_error(h.reserve(item.item_id, user="dan"), FAILED, "PER_USER_LIMIT_REACHED")
    h.clock.set(START + timedelta(days=7))
    assert (await h.quote(weekly.item_id, user="dan")).user_remaining_allowance == 1
    assert (await h.quote(lifetime.item_id, user="dan")).user_remaining_allowance == 0


async def test_expired_active_reservations_do_not_count_against_the_limit(h: Harness) -> None:
    item = await h.create_item(per_user_limit=1)
    await h.reserve(item.item_id, user="erin", ttl=60)
    h.clock.advance(59)
    await expect_error(h.reserve(item.item_id, user="erin"), FAILED, "PER_USER_LIMIT_REACHED")
    h.clock.advance(1)  # expired, not yet swept: no longer counted
    await h.reserve(item.item_id, user="erin")


async def campaign(h: Harness, item_ids: list[str], **rule: object) -> pb.Campaign:
    spec = pb.CampaignSpec(name="c", sponsor="Acme", item_ids=item_ids,
                           start_time=ts(rule.pop("start", START - timedelta(days=1))),  # type: ignore[arg-type]
                           end_time=ts(rule.pop("end", START + timedelta(days=1))), **rule)  # type: ignore[arg-type]
    reply: pb.CreateCampaignResponse = await h.call(
        "CreateCampaign", pb.CreateCampaignRequest(request_id=rid(), spec=spec))
    return reply.campaign


async def test_overlapping_campaigns_give_the_best_price_per_region(h: Harness) -> None:
    item = await h.create_item(price=common_pb2.Price(currency=POINTS, amount=1000))
    everywhere = await campaign(h, [item.item_id], percent_off_bps=1000)
    de_fixed = await campaign(h, [item.item_id], regions=["DE"],
                              fixed_price=common_pb2.Price(currency=POINTS, amount=700))
    later = await campaign(h, [item.item_id], percent_off_bps=5000,
                           start=START + timedelta(hours=1), end=START + timedelta(hours=2))
    assert everywhere.sponsor == "Acme" and later.percent_off_bps == 5000
    us = await h.quote(item.item_id, region="US", quantity=3)
    assert (us.unit_price.amount, us.total_price.amount, us.campaign_id) == (900, 2700, everywhere.campaign_id)
    de = await h.quote(item.item_id, region="DE")
    assert (de.unit_price.amount, de.campaign_id) == (700, de_fixed.campaign_id)
    h.clock.set(START + timedelta(hours=1))
    assert (await h.quote(item.item_id, region="DE")).campaign_id == later.campaign_id
    reservation = await h.reserve(item.item_id, region="DE", quantity=2)
    assert (reservation.unit_price.amount, reservation.total_price.amount) == (500, 1000)
    assert reservation.campaign_id == later.campaign_id
    h.clock.set(START + timedelta(hours=2))  # later ended (exclusive); DE fixed price is best again
    assert (await h.quote(item.item_id, region="DE")).unit_price.amount == 700
    h.clock.set(START + timedelta(days=1))
    plain = await h.quote(item.item_id, region="DE")
    assert (plain.unit_price.amount, plain.campaign_id) == (1000, "")

    listed = (await h.call("ListCampaigns", pb.ListCampaignsRequest(region="DE", active_at=ts(START)), "app"))
    ids = {c.campaign_id for c in listed.campaigns}
    assert {everywhere.campaign_id, de_fixed.campaign_id} <= ids and later.campaign_id not in ids


async def test_campaign_validation(h: Harness) -> None:
    coins_item = await h.create_item(price=common_pb2.Price(currency=COINS, amount=10))
    mismatch = pb.CreateCampaignRequest(request_id=rid(), spec=pb.CampaignSpec(
        name="c", item_ids=[coins_item.item_id], start_time=ts(START), end_time=ts(START + timedelta(days=1)),
        fixed_price=common_pb2.Price(currency=POINTS, amount=5)))
    await expect_error(h.call("CreateCampaign", mismatch), grpc.StatusCode.INVALID_ARGUMENT, "CURRENCY_MISMATCH")
    unknown = pb.CreateCampaignRequest(request_id=rid(), spec=pb.CampaignSpec(
        name="c", item_ids=["item-unknown"], start_time=ts(START), end_time=ts(START + timedelta(days=1)),
        percent_off_bps=100))
    await expect_error(h.call("CreateCampaign", unknown), grpc.StatusCode.NOT_FOUND, "ITEM_NOT_FOUND")
    no_rule = pb.CreateCampaignRequest(request_id=rid(), spec=pb.CampaignSpec(
        name="c", item_ids=[coins_item.item_id], start_time=ts(START), end_time=ts(START + timedelta(days=1))))
    await expect_error(h.call("CreateCampaign", no_rule), grpc.StatusCode.INVALID_ARGUMENT)


async def test_cached_item_and_campaigns_follow_updates(h: Harness) -> None:
    """Quote/ReserveStock cache an item's spec per version and its campaigns per link count:
    a new campaign, a price change and archiving are all seen by the very next call."""
    item = await h.create_item(price=common_pb2.Price(currency=POINTS, amount=1000))
    assert (await h.quote(item.item_id)).unit_price.amount == 1000  # cached: no campaign
    await h.reserve(item.item_id, user="cache-1")
    sale = await campaign(h, [item.item_id], percent_off_bps=2000)
    assert ((await h.quote(item.item_id)).unit_price.amount, (await h.quote(item.item_id)).campaign_id) == (
        800, sale.campaign_id)
    assert (await h.reserve(item.item_id, user="cache-2")).unit_price.amount == 800
    await h.call("UpdateItem", pb.UpdateItemRequest(
        request_id=rid(), item_id=item.item_id, spec=item_spec(price=common_pb2.Price(currency=POINTS, amount=500))))
    assert (await h.quote(item.item_id)).unit_price.amount == 400
    await h.call("UpdateItem", pb.UpdateItemRequest(request_id=rid(), item_id=item.item_id, spec=item_spec(),
                                                    archived=True))
    await assert_refused(h, item.item_id, "ITEM_ARCHIVED")


async def test_an_ended_campaign_stops_pricing_at_once(h: Harness) -> None:
    """EndCampaign (a wrong price, a brand pulling out): the very next quote and reservation use the
    base price, though the campaign's quotes were cached; a future campaign ended never applies."""
    item = await h.create_item(price=common_pb2.Price(currency=POINTS, amount=1000))
    mistake = await campaign(h, [item.item_id], percent_off_bps=9900)
    future = await campaign(h, [item.item_id], percent_off_bps=5000,
                            start=START + timedelta(hours=1), end=START + timedelta(hours=2))
    assert (await h.quote(item.item_id)).unit_price.amount == 10  # cached with its campaigns
    end = pb.EndCampaignRequest(request_id=rid(), campaign_id=mistake.campaign_id)
    ended = (await h.call("EndCampaign", end)).campaign
    assert ended.ended_time.ToDatetime().replace(tzinfo=START.tzinfo) == START
    assert (ended.end_time, ended.percent_off_bps) == (mistake.end_time, 9900)
    quote = await h.quote(item.item_id)
    assert (quote.unit_price.amount, quote.campaign_id) == (1000, "")
    assert (await h.reserve(item.item_id, user="ended-1")).unit_price.amount == 1000
    assert (await h.call("EndCampaign", end)).campaign == ended  # replay
    await expect_error(
        h.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id=mistake.campaign_id)),
        FAILED, "CAMPAIGN_ALREADY_ENDED")
    active = await h.call("ListCampaigns", pb.ListCampaignsRequest(active_at=ts(START)), "app")
    assert mistake.campaign_id not in {c.campaign_id for c in active.campaigns}

    await h.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id=future.campaign_id))
    h.clock.set(START + timedelta(hours=1, minutes=30))
    try:
        assert (await h.quote(item.item_id)).unit_price.amount == 1000
    finally:
        h.clock.set(START)
    past = await campaign(h, [item.item_id], percent_off_bps=100, start=START - timedelta(days=2),
                          end=START - timedelta(days=1))
    await expect_error(
        h.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id=past.campaign_id)),
        FAILED, "CAMPAIGN_ALREADY_ENDED")
    await expect_error(
        h.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id="campaign-unknown")),
        grpc.StatusCode.NOT_FOUND, "CAMPAIGN_NOT_FOUND")
    await expect_error(
        h.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id=future.campaign_id), "app"),
        grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")


async def test_get_campaign_reads_one_campaign_by_id(h: Harness) -> None:
    """GetCampaign answers what CreateCampaign and EndCampaign answered, to every caller (like
    ListCampaigns); an unknown id is CAMPAIGN_NOT_FOUND, a malformed one INVALID_ARGUMENT."""
    item = await h.create_item()
    created = await campaign(h, [item.item_id], regions=["DE"], percent_off_bps=2500)
    for caller in ("app", "admin", "redemption"):  # through the typed stub: a use vulture sees
        got = await h.stub().GetCampaign(
            pb.GetCampaignRequest(campaign_id=created.campaign_id), metadata=bearer(TOKENS[caller]), timeout=30)
        assert got.campaign == created
    ended = (await h.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id=created.campaign_id)))
    assert (await h.call("GetCampaign", pb.GetCampaignRequest(campaign_id=created.campaign_id))).campaign == (
        ended.campaign)
    assert ended.campaign.HasField("ended_time")
    await expect_error(
        h.call("GetCampaign", pb.GetCampaignRequest(campaign_id="campaign-unknown"), "app"),
        grpc.StatusCode.NOT_FOUND, "CAMPAIGN_NOT_FOUND")
    await expect_error(
        h.call("GetCampaign", pb.GetCampaignRequest(campaign_id="")),
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")


async def test_raffle_tickets_stop_selling_at_the_sales_close(h: Harness) -> None:
    """Quote reports and ReserveStock refuses RAFFLE_CLOSED from the close instant on (half-open); a
    raffle without sales_close_time closes at its draw time; a reservation made before the close
    still commits after it (the saga's point of no return decides, not the catalog)."""
    close, draw = START + timedelta(hours=1), START + timedelta(hours=2)
    explicit = await h.create_item(
        kind=pb.ITEM_KIND_RAFFLE_TICKET, limited_stock=True, stock_total=5, raffle=pb.RaffleAttributes(
            raffle_id="close-explicit", winners=1, draw_time=ts(draw), sales_close_time=ts(close)))
    default = await h.create_item(kind=pb.ITEM_KIND_RAFFLE_TICKET, raffle=pb.RaffleAttributes(
        raffle_id="close-default", winners=1, draw_time=ts(draw)))
    assert explicit.raffle.sales_close_time == ts(close) and not default.raffle.HasField("sales_close_time")
    early = await h.reserve(explicit.item_id, ttl=7200)
    h.clock.set(close - timedelta(microseconds=1))
    assert (await h.quote(explicit.item_id)).redeemable
    h.clock.set(close)
    quote = await h.quote(explicit.item_id)
    assert (quote.redeemable, quote.unavailable_reason) == (False, "RAFFLE_CLOSED")
    await expect_error(h.reserve(explicit.item_id), grpc.StatusCode.FAILED_PRECONDITION, "RAFFLE_CLOSED")
    assert (await h.commit(early)).state == pb.RESERVATION_STATE_COMMITTED
    assert await h.stock_row(explicit.item_id) == (5, 4, 0, 1)  # the refusal took nothing
    assert (await h.quote(default.item_id)).redeemable
    h.clock.set(draw)
    await expect_error(h.reserve(default.item_id), grpc.StatusCode.FAILED_PRECONDITION, "RAFFLE_CLOSED")


async def test_a_sales_close_needs_a_draw_time_at_or_after_it(h: Harness) -> None:
    draw = START + timedelta(hours=2)
    for attributes in (
        pb.RaffleAttributes(
            raffle_id="r", winners=1, draw_time=ts(draw), sales_close_time=ts(draw + timedelta(seconds=1))
        ),
        pb.RaffleAttributes(raffle_id="r", winners=1, sales_close_time=ts(draw)),
    ):
        error = await expect_error(h.create_item(kind=pb.ITEM_KIND_RAFFLE_TICKET, raffle=attributes),
                                   grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
        assert "spec.raffle.sales_close_time" in (error.details() or "")
    at_draw = await h.create_item(kind=pb.ITEM_KIND_RAFFLE_TICKET, raffle=pb.RaffleAttributes(
        raffle_id="r", winners=1, draw_time=ts(draw), sales_close_time=ts(draw)))
    assert at_draw.raffle.sales_close_time == at_draw.raffle.draw_time


async def test_both_reservation_paths_price_from_the_same_campaigns(h: Harness) -> None:
    """A per-user-limited item reserves on the general path, an unlimited twin on the hot one: each
    reservation has its quote's price, through running, future, ended and other-region campaigns."""
    price = common_pb2.Price(currency=POINTS, amount=1000)
    hot = await h.create_item(price=price)
    general = await h.create_item(price=price, per_user_limit=5)
    items = [hot.item_id, general.item_id]
    running = await campaign(h, items, percent_off_bps=1000)
    await campaign(h, items, regions=["DE"], fixed_price=common_pb2.Price(currency=POINTS, amount=100))
    later = await campaign(h, items, percent_off_bps=3000,
                           start=START + timedelta(hours=1), end=START + timedelta(hours=2))
    pulled = await campaign(h, items, percent_off_bps=9000)
    await h.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id=pulled.campaign_id))
    for moment, expected in ((START, (900, running.campaign_id)),
                             (START + timedelta(hours=1), (700, later.campaign_id))):
        h.clock.set(moment)
        for item_id in items:
            quote = await h.quote(item_id, user="paths")
            reservation = await h.reserve(item_id, user="paths", quantity=2)
            assert (quote.unit_price.amount, quote.campaign_id) == expected
            assert (reservation.unit_price.amount, reservation.campaign_id) == expected
            assert reservation.total_price.amount == 2 * expected[0]


async def test_remembered_items_read_stock_and_allowance_fresh_per_quote(h: Harness) -> None:
    """After the first quote the item comes from memory; the stock and the user's count (one statement on
    the read pool) still move with every reservation, each read at the remembered version."""
    both = await h.create_item(limited_stock=True, stock_total=7, per_user_limit=2)
    scarce = await h.create_item(limited_stock=True, stock_total=3)
    capped = await h.create_item(per_user_limit=2)
    for item in (both, scarce, capped):
        await h.quote(item.item_id, user="alice")  # remembered from here on
        await h.reserve(item.item_id, user="alice")
    q = await h.quote(both.item_id, user="alice")
    assert (q.stock_remaining, q.user_remaining_allowance, q.redeemable) == (6, 1, True)
    assert (await h.quote(both.item_id, user="bob")).user_remaining_allowance == 2
    q = await h.quote(scarce.item_id, user="alice")
    assert (q.stock_remaining, q.user_remaining_allowance) == (2, -1)
    q = await h.quote(capped.item_id, user="alice")
    assert (q.stock_remaining, q.user_remaining_allowance) == (-1, 1)
    await h.reserve(both.item_id, user="alice")
    await assert_refused(h, both.item_id, "PER_USER_LIMIT_REACHED", user="alice")
    assert (await h.quote(both.item_id, user="bob")).stock_remaining == 5
