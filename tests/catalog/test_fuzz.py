"""Hypothesis-generated requests: INVALID_ARGUMENT or a domain error, never INTERNAL/UNKNOWN.

Hypothesis drives a synchronous test in a worker thread; each example's call runs on the
session event loop, where the server and channel live.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points.catalog.v1 import catalog_pb2 as pb
from points.common.v1 import common_pb2
from points_platform.client import fits_header
from tests.catalog.conftest import Harness
from tests.support.rpc import on_loop, status_of

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
}
INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
SMALL = st.integers(-3, 12)
TEXT = st.one_of(
    st.text(max_size=140), st.sampled_from(["", "ok-id", "US", "x" * 129, "a\x00b", "\x00", "DE", "u1", "\u2603"])
)
REGION = st.one_of(st.sampled_from(["US", "DE", "", "us", "ZZZ"]), st.text(max_size=3))
TIMESTAMP = st.builds(Timestamp, seconds=INT64, nanos=INT32) | st.builds(
    Timestamp, seconds=st.integers(1_700_000_000, 1_900_000_000)
)
PRICE = st.builds(common_pb2.Price, currency=SMALL, amount=INT64 | st.integers(-5, 2000))


VALID_ATTRIBUTES = {
    pb.ITEM_KIND_PREMIUM_DISCOUNT: ("discount", pb.DiscountAttributes(percent_off_bps=500, target_feature="ad_free")),
    pb.ITEM_KIND_VIRTUAL_GIFT: ("gift", pb.GiftAttributes(gift_id="rose")),
    pb.ITEM_KIND_RAFFLE_TICKET: ("raffle", pb.RaffleAttributes(raffle_id="r1", winners=1)),
    pb.ITEM_KIND_COSMETIC: ("cosmetic", pb.CosmeticAttributes(cosmetic_id="c1")),
    pb.ITEM_KIND_EVENT_ACCESS: ("event_access", pb.EventAccessAttributes(event_id="e1")),
}


FIELDS = ("kind", "title", "description", "price", "regions", "stock_total", "per_user_limit",
          "per_user_limit_window", "available_from", "available_until", "attributes", "entitlement_terms")


@st.composite
def item_specs(draw: st.DrawFn) -> pb.ItemSpec:
    """A valid spec with up to three fields replaced by random values, so deep paths are reached."""
    wild = draw(st.sets(st.sampled_from(FIELDS), max_size=2))

    def pick(name: str, valid: Any, strategy: st.SearchStrategy[Any]) -> Any:
        return draw(strategy) if name in wild else valid

    kind = pick("kind", pb.ITEM_KIND_COSMETIC, SMALL)
    limited = draw(st.booleans())
    spec = pb.ItemSpec(
        kind=kind, title=pick("title", "title", TEXT), description=pick("description", "", TEXT),
        price=pick("price", common_pb2.Price(currency=common_pb2.CURRENCY_POINTS, amount=10), PRICE),
        regions=pick("regions", ["US"], st.lists(REGION, max_size=4)), limited_stock=limited,
        stock_total=pick("stock_total", 10 if limited else 0, INT64 | st.integers(-2, 50)),
        per_user_limit=pick("per_user_limit", 0, INT32 | st.integers(-1, 5)),
        per_user_limit_window=pick("per_user_limit_window", 0, SMALL),
    )
    if "entitlement_terms" in wild:
        spec.entitlement_terms.CopyFrom(pb.EntitlementTerms(
            max_uses=draw(INT32 | SMALL), unlimited_uses=draw(st.booleans()), valid_until=draw(TIMESTAMP),
            valid_for_seconds=draw(INT64 | st.integers(-1, 400_000_000))))
    for name in ("available_from", "available_until"):
        if name in wild:
            getattr(spec, name).CopyFrom(draw(TIMESTAMP))
    attributes = "valid"
    if "attributes" in wild:
        attributes = draw(st.sampled_from(["none", "discount", "raffle", "event_access", "gift", "cosmetic"]))
    if attributes == "valid" and kind in VALID_ATTRIBUTES:
        name, value = VALID_ATTRIBUTES[kind]
        getattr(spec, name).CopyFrom(value)
    elif attributes == "discount":
        spec.discount.CopyFrom(pb.DiscountAttributes(percent_off_bps=draw(INT32), target_feature=draw(TEXT)))
    elif attributes == "raffle":
        spec.raffle.CopyFrom(pb.RaffleAttributes(raffle_id=draw(TEXT), winners=draw(INT32), draw_time=draw(TIMESTAMP)))
    elif attributes == "event_access":
        spec.event_access.CopyFrom(pb.EventAccessAttributes(event_id=draw(TEXT)))
    elif attributes == "gift":
        spec.gift.CopyFrom(pb.GiftAttributes(gift_id=draw(TEXT)))
    elif attributes == "cosmetic":
        spec.cosmetic.CopyFrom(pb.CosmeticAttributes(cosmetic_id=draw(TEXT), limited_edition=draw(st.booleans())))
    return spec


async def test_random_requests_never_crash_the_server(h: Harness) -> None:
    loop = asyncio.get_running_loop()
    known = [
        (await h.create_item(limited_stock=True, stock_total=1000, per_user_limit=3, regions=["US"])).item_id,
        (await h.create_item()).item_id,
    ]
    item_ids = st.one_of(st.sampled_from(known), TEXT)
    request_ids = st.one_of(st.uuids().map(str), st.uuids().map(str), st.sampled_from(["fuzz-1", "fuzz-2"]), TEXT)
    seen: list[grpc.StatusCode] = []

    def call(method: str, request: Any, caller: str) -> None:
        # An `app` Quote acts for the user it names when that id can travel in a header; otherwise
        # for another user, and then USER_SCOPE_MISMATCH (PERMISSION_DENIED) is the right answer.
        named = getattr(request, "user_id", "")
        user = (named if fits_header(named) else "fuzz-user") if caller == "app" else ""
        allowed = ALLOWED | ({grpc.StatusCode.PERMISSION_DENIED} if user and user != named else set())

        code = on_loop(loop, status_of(lambda: h.call(method, request, caller, user=user)))
        seen.append(code)
        assert code in allowed, (method, request, code)

    fuzz = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)

    @settings(fuzz, max_examples=300)
    @given(request_id=request_ids, spec=item_specs())
    def create_item(request_id: str, spec: pb.ItemSpec) -> None:
        call("CreateItem", pb.CreateItemRequest(request_id=request_id, spec=spec), "admin")

    @fuzz
    @given(item_id=item_ids, user_id=st.just("u1") | TEXT, region=REGION, quantity=INT64 | st.integers(-1, 5))
    def quote(item_id: str, user_id: str, region: str, quantity: int) -> None:
        call("Quote", pb.QuoteRequest(item_id=item_id, user_id=user_id, region=region, quantity=quantity), "app")

    @fuzz
    @given(request_id=request_ids, item_id=item_ids, user_id=st.just("u1") | TEXT, region=REGION,
           quantity=INT64 | st.integers(-1, 5), ttl=INT64 | st.integers(-1, 100))
    def reserve(request_id: str, item_id: str, user_id: str, region: str, quantity: int, ttl: int) -> None:
        call("ReserveStock", pb.ReserveStockRequest(request_id=request_id, item_id=item_id, user_id=user_id,
                                                    region=region, quantity=quantity, ttl_seconds=ttl), "redemption")

    committed = []
    for n in range(2):
        r = await h.reserve(known[n], quantity=3, request_id=f"fuzz-return-{n}")
        committed.append((await h.commit(r)).reservation_id)

    @fuzz
    @given(request_id=request_ids, reservation_id=st.one_of(st.sampled_from(committed), TEXT),
           quantity=INT64 | st.integers(-1, 4))
    def return_stock(request_id: str, reservation_id: str, quantity: int) -> None:
        call("ReturnStock", pb.ReturnStockRequest(request_id=request_id, reservation_id=reservation_id,
                                                  quantity=quantity), "redemption")

    for test in (create_item, quote, reserve, return_stock):
        await asyncio.to_thread(test)
    assert grpc.StatusCode.OK in seen and grpc.StatusCode.INVALID_ARGUMENT in seen
