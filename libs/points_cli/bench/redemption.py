"""Redemption benchmark scenario for `points bench redemption`.

redeem: end-to-end Redeem of an unlimited-stock cosmetic without a per-user limit by users with funds
available; each call runs the whole saga (Quote before the saga is created, then Reserve + grant,
CommitHold: three peer RPCs and three redemption writes, group-committed with those of concurrent
sagas; no stock steps, item facts cached). redeem_limited: the same for a limited-stock cosmetic with
stock no run exhausts (Quote with the balance read, ReserveStock with Reserve + grant in one round,
CommitHold, CommitReservation: six peer RPCs, four writes). The harness adds Health/Check on the
redemption server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.common.v1.common_pb2 import CURRENCY_POINTS, Price
from points.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_cli.bench.harness import BenchContext, Scenario
from points_platform.client import acting_for

Call = Callable[[int], Awaitable[None]]
USERS = 256
FUNDS = 10**12  # no run exhausts it
ITEM_REQUEST_ID = "bench-redemption-item"  # fixed: the catalog derives the item id from it
LIMITED_ITEM_REQUEST_ID = "bench-redemption-limited-item"
LIMITED_STOCK = 10**9  # no run sells it out


def _user(i: int) -> str:
    return f"bench-redeemer-{i}"


async def _bench_item(ctx: BenchContext, *, limited: bool = False) -> str:
    stub = catalog_pb2_grpc.CatalogServiceStub(ctx.channel("catalog"))
    reply = await stub.CreateItem(
        catalog_pb2.CreateItemRequest(
            request_id=LIMITED_ITEM_REQUEST_ID if limited else ITEM_REQUEST_ID,
            spec=catalog_pb2.ItemSpec(
                kind=catalog_pb2.ITEM_KIND_COSMETIC,
                title="Bench badge",
                price=Price(currency=CURRENCY_POINTS, amount=1),
                cosmetic=catalog_pb2.CosmeticAttributes(cosmetic_id="bench-badge"),
                limited_stock=limited,
                stock_total=LIMITED_STOCK if limited else 0,
            ),
        ),
        metadata=ctx.metadata("admin"),
    )
    return reply.item.item_id


async def setup(ctx: BenchContext) -> None:
    """Create the items (idempotent) and fund the redeemers through wallet Credit as admin."""
    await _bench_item(ctx)
    await _bench_item(ctx, limited=True)
    wallet = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
    for i in range(USERS):
        await wallet.Credit(
            wallet_pb2.CreditRequest(
                request_id=f"bench-redemption-fund-{i}", user_id=_user(i), currency=CURRENCY_POINTS, amount=FUNDS,
                reason="bench", reference="bench-setup",
            ),
            metadata=ctx.metadata("admin"),
        )


async def build_redeem(ctx: BenchContext) -> Call:
    return await _redeem_call(ctx, await _bench_item(ctx))  # same request id: returns the item created in setup


async def build_redeem_limited(ctx: BenchContext) -> Call:
    return await _redeem_call(ctx, await _bench_item(ctx, limited=True))


async def _redeem_call(ctx: BenchContext, item_id: str) -> Call:
    stub = redemption_pb2_grpc.RedemptionServiceStub(ctx.channel("redemption"))
    # The app backend acting for each redeemer (Redeem is scoped to the user it acts for).
    mds = [acting_for(ctx.metadata("app"), _user(n)) for n in range(USERS)]

    async def call(i: int) -> None:
        n = (ctx.worker * 7919 + i) % USERS
        reply = await stub.Redeem(
            redemption_pb2.RedeemRequest(
                request_id=f"bench-{ctx.run_id}-{ctx.worker}-{i}", user_id=_user(n), item_id=item_id, quantity=1,
                region="US",
            ),
            metadata=mds[n],
            timeout=10,
        )
        if reply.redemption.state != redemption_pb2.REDEMPTION_STATE_COMPLETED:
            raise RuntimeError(f"redemption ended {reply.redemption.state} {reply.redemption.cancel_reason}")

    return call


SCENARIOS = [
    Scenario(name="redeem", target="redemption", build=build_redeem, setup=setup, events_per_call=1),
    Scenario(name="redeem_limited", target="redemption", build=build_redeem_limited, setup=setup, events_per_call=1),
]
