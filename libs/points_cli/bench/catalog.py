"""Catalog benchmark scenarios for `points bench catalog`.

quote: Quote of a limited item (its stock is read per quote); quote_unlimited: Quote of an
unlimited item without a per-user limit (served from memory); reserve_release_unlimited: ReserveStock then
ReleaseReservation on an unlimited item (the hot path without a stock row lock, two RPCs per
call); reserve_limited: ReserveStock on one limited item with ample stock (every call updates
the same stock row: the contended case); list_items: one page of 50 items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import grpc

from points.catalog.v1 import catalog_pb2 as pb
from points.catalog.v1 import catalog_pb2_grpc
from points.common.v1.common_pb2 import CURRENCY_POINTS, Price
from points_cli.bench.harness import BenchContext, Scenario
from points_platform.client import acting_for

Call = Callable[[int], Awaitable[None]]
UNLIMITED = "bench-catalog-item-unlimited"
LIMITED = "bench-catalog-item-limited"


def _item_id(request_id: str) -> str:
    return f"item-{hashlib.sha256(request_id.encode()).hexdigest()[:20]}"


def _stub(ctx: BenchContext) -> catalog_pb2_grpc.CatalogServiceAsyncStub:
    return catalog_pb2_grpc.CatalogServiceStub(ctx.channel("catalog"))


async def setup(ctx: BenchContext) -> None:
    stub = _stub(ctx)
    md = ctx.metadata("admin")
    specs = {
        UNLIMITED: pb.ItemSpec(kind=pb.ITEM_KIND_COSMETIC, title="Bench frame",
                               price=Price(currency=CURRENCY_POINTS, amount=10),
                               cosmetic=pb.CosmeticAttributes(cosmetic_id="bench-frame")),
        LIMITED: pb.ItemSpec(kind=pb.ITEM_KIND_RAFFLE_TICKET, title="Bench raffle",
                             price=Price(currency=CURRENCY_POINTS, amount=5),
                             limited_stock=True, stock_total=10**11,
                             raffle=pb.RaffleAttributes(raffle_id="bench-raffle", winners=1)),
    }
    for request_id, spec in specs.items():
        try:
            await stub.CreateItem(pb.CreateItemRequest(request_id=request_id, spec=spec), metadata=md)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise


def _rid(ctx: BenchContext, kind: str, i: int) -> str:
    return f"bench-{ctx.run_id}-{kind}-{ctx.worker}-{i}"


def _quote_of(spec_request_id: str) -> Callable[[BenchContext], Awaitable[Call]]:
    async def build(ctx: BenchContext) -> Call:
        stub, md = _stub(ctx), acting_for(ctx.metadata("app"), "bench-user")
        request = pb.QuoteRequest(item_id=_item_id(spec_request_id), user_id="bench-user", region="US", quantity=1)

        async def call(i: int) -> None:
            await stub.Quote(request, metadata=md)

        return call

    return build


build_quote = _quote_of(LIMITED)
build_quote_unlimited = _quote_of(UNLIMITED)


async def build_reserve_release_unlimited(ctx: BenchContext) -> Call:
    stub, md = _stub(ctx), ctx.metadata("redemption")
    item = _item_id(UNLIMITED)

    async def call(i: int) -> None:
        reply = await stub.ReserveStock(
            pb.ReserveStockRequest(request_id=_rid(ctx, "rs", i), item_id=item, user_id=f"bench-{ctx.worker}-{i}",
                                   quantity=1, region="US", ttl_seconds=60),
            metadata=md,
        )
        await stub.ReleaseReservation(
            pb.ReleaseReservationRequest(
                request_id=_rid(ctx, "rl", i), reservation_id=reply.reservation.reservation_id
            ),
            metadata=md,
        )

    return call


async def build_reserve_limited(ctx: BenchContext) -> Call:
    stub, md = _stub(ctx), ctx.metadata("redemption")
    item = _item_id(LIMITED)

    async def call(i: int) -> None:
        await stub.ReserveStock(
            pb.ReserveStockRequest(request_id=_rid(ctx, "rx", i), item_id=item, user_id=f"bench-{ctx.worker}-{i}",
                                   quantity=1, region="US", ttl_seconds=30),
            metadata=md,
        )

    return call


async def build_list_items(ctx: BenchContext) -> Call:
    stub, md = _stub(ctx), ctx.metadata("app")

    async def call(i: int) -> None:
        await stub.ListItems(pb.ListItemsRequest(page_size=50), metadata=md)

    return call


SCENARIOS = [
    Scenario(name="quote", target="catalog", build=build_quote, setup=setup),
    Scenario(name="quote_unlimited", target="catalog", build=build_quote_unlimited, setup=setup),
    Scenario(name="reserve_release_unlimited", target="catalog", build=build_reserve_release_unlimited, setup=setup),
    Scenario(name="reserve_limited", target="catalog", build=build_reserve_limited, setup=setup),
    Scenario(name="list_items", target="catalog", build=build_list_items, setup=setup),
]
