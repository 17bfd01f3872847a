"""The demo seed: idempotent, every kind, two regions, one campaign, stable ids."""

from __future__ import annotations

from collections import Counter

from points.catalog.v1 import catalog_pb2 as pb
from points_cli.seed import catalog as demo
from points_cli.seed.context import SeedContext
from points_cli.targets import SuiteTargets
from tests.catalog.conftest import Harness, settings
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS


async def test_seed_twice_gives_one_stable_demo_catalog(h: Harness, new_database: NewDatabase) -> None:
    import grpc

    from catalog.main import start

    started = await start(settings(await new_database("catalog_seed")), clock=h.clock, run_sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    own = Harness(started, h.clock, channel)
    ctx = SeedContext(SuiteTargets(ports={"catalog": started.port}, tokens=TOKENS))
    try:
        await demo.seed(ctx)
        await demo.seed(ctx)
        items = (await own.call("ListItems", pb.ListItemsRequest(page_size=100), "app")).items
        assert len(items) == len(demo.ITEMS)
        assert {i.item_id for i in items} == {demo.item_id(slug) for slug in demo.ITEMS}
        assert set(Counter(i.kind for i in items).values()) == {2}
        assert {r for i in items for r in i.regions} == {"US", "DE"}
        frame = await own.quote(demo.DEMO_POINTS_COSMETIC, region="US")
        assert (frame.unit_price.amount, frame.campaign_id) == (400, demo.campaign_id())
        assert (await own.quote(demo.DEMO_POINTS_COSMETIC, region="DE")).unit_price.amount == 500
        gift = await own.quote(demo.DEMO_COINS_GIFT, region="DE")
        assert gift.redeemable and gift.unit_price.currency == 2
        assert (await own.quote(demo.DEMO_RAFFLE_TICKET, region="US")).redeemable
    finally:
        await ctx.close()
        await channel.close()
        await started.stop()
