"""The catalog's stock events through its own outbox and relay to a real nats-server: stock_low
when the units free to reserve cross the low-stock threshold, stock_sold_out when they reach zero,
each once per crossing (a move back up re-arms it), whichever path took the units; nothing for a
change that rolled back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import text

from catalog.api.servicer import request_key
from catalog.config import CatalogSettings
from catalog.main import start
from catalog.use_cases.commands import ReserveStock
from points.catalog.v1 import catalog_pb2 as pb
from points_platform.clock import ManualClock
from points_platform.embedded_nats import EmbeddedNats
from tests.catalog.conftest import START, Harness, item_spec, rid
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.nats import connect_client, drained_stream

LOW = 2


@dataclass
class Catalog:
    h: Harness
    nc: NatsClient

    async def sql(self, statement: str) -> int:
        """A count, from the catalog's database."""
        async with self.h.started.engine.connect() as conn:
            return int((await conn.execute(text(statement))).scalar_one())

    async def ddl(self, statement: str) -> None:
        async with self.h.started.engine.begin() as conn:
            await conn.execute(text(statement))

    async def published(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """Every event the stream holds once the outbox is drained: (type, item, payload numbers)."""
        stored = await drained_stream(self.h.started.engine, self.nc, "catalog")
        events = []
        for m in stored:
            e = m.event
            assert (e.source_service, e.user_id, m.msg_id) == ("catalog", "", e.event_id)
            assert m.subject.startswith(f"points.catalog.{e.event_type}.")
            payload = getattr(e, e.event_type)
            assert payload.item_id == e.aggregate_id
            numbers: tuple[int, ...] = (
                (payload.remaining, payload.threshold) if e.event_type == "stock_low" else (payload.total_stock,))
            events.append((e.event_type, e.aggregate_id, numbers))
        return events

    async def limited_item(self, total: int, per_user_limit: int = 0) -> str:
        return (await self.h.create_item(limited_stock=True, stock_total=total, per_user_limit=per_user_limit)).item_id

    async def reserve_fast(self, item_id: str, user: str) -> bool:
        """The hot path alone (`Reservations.reserve_fast`): True if its one statement reserved."""
        request = pb.ReserveStockRequest(request_id=rid(), item_id=item_id, user_id=user, quantity=1, region="US")
        cmd = ReserveStock(request_key("ReserveStock", request, user_id=user), item_id=item_id, user_id=user,
                           quantity=1, region="US", ttl_seconds=0)
        return await self.h.started.reservations.reserve_fast(cmd) is not None


@pytest.fixture
async def cat(new_database: NewDatabase, nats_server: EmbeddedNats) -> AsyncIterator[Catalog]:
    settings = CatalogSettings(
        database_url=await new_database("catalog"), port=0, tokens_json=json.dumps(TOKENS), db_pool_size=10,
        nats_url=nats_server.url, stock_low_threshold=LOW,
    )
    clock = ManualClock(START)
    started = await start(settings, clock=clock, run_sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    nc = await connect_client(nats_server)
    try:
        yield Catalog(Harness(started, clock, channel), nc)
    finally:
        await nc.close()
        await channel.close()
        await started.stop()


async def test_the_hot_path_leaves_each_crossing_to_the_general_path_which_publishes_it_once(cat: Catalog) -> None:
    """An item without a per-user limit reserves on the hot path; the one statement refuses the
    reservation that would cross a threshold (nothing written), and the RPC's general path takes
    it and appends the event. A release re-arms sold out; units below the threshold stay quiet."""
    h = cat.h
    item = await cat.limited_item(5)
    assert await cat.reserve_fast(item, "a")  # 5 -> 4
    await h.reserve(item, user="b")  # 4 -> 3
    assert not await cat.reserve_fast(item, "c")  # 3 -> 2 would cross LOW
    assert await h.stock_row(item) == (5, 3, 2, 0)
    assert await cat.sql("SELECT count(*) FROM outbox") == 0
    await h.reserve(item, user="c")  # 3 -> 2: stock_low
    assert await cat.reserve_fast(item, "d")  # 2 -> 1: already low
    assert not await cat.reserve_fast(item, "e")  # 1 -> 0 would sell out
    last = await h.reserve(item, user="e")  # 1 -> 0: sold out
    await h.release(last)  # 0 -> 1 (hot RELEASE): re-armed, no event
    await h.commit(await h.reserve(item, user="f"))  # 1 -> 0: sold out again
    await expect_out_of_stock(h, item)
    assert await cat.published() == [
        ("stock_low", item, (2, LOW)),
        ("stock_sold_out", item, (5,)),
        ("stock_sold_out", item, (5,)),
    ]


async def expect_out_of_stock(h: Harness, item: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await h.reserve(item, user="late")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("per_user_limit", [0, 5], ids=["hot-first", "general-only"])
async def test_concurrent_reservations_publish_each_crossing_once(cat: Catalog, per_user_limit: int) -> None:
    """Eight users reserve the last eight units at once (both paths, or the general one alone):
    each stock UPDATE holds the row, so exactly one of them sees each threshold crossed."""
    item = await cat.limited_item(8, per_user_limit)
    await asyncio.gather(*(cat.h.reserve(item, user=f"u{n}") for n in range(8)))
    assert await cat.h.stock_row(item) == (8, 0, 8, 0)
    assert await cat.published() == [("stock_low", item, (LOW, LOW)), ("stock_sold_out", item, (8,))]


async def test_a_rolled_back_crossing_publishes_nothing(cat: Catalog) -> None:
    """The crossing reservation's transaction fails after the stock moved and the event was
    appended (a constraint the test adds refuses its reservation row): stock and outbox roll back
    together, and the next reservation crossing the same threshold is the one published."""
    item = await cat.limited_item(3)
    await cat.ddl("ALTER TABLE reservations ADD CONSTRAINT test_refuses_doomed CHECK (user_id <> 'doomed')")
    with pytest.raises(grpc.aio.AioRpcError):
        await cat.h.reserve(item, user="doomed")
    assert await cat.h.stock_row(item) == (3, 3, 0, 0)
    assert await cat.sql("SELECT count(*) FROM outbox") == 0
    await cat.h.reserve(item, user="fine")
    assert await cat.published() == [("stock_low", item, (LOW, LOW))]


async def test_an_update_lowering_the_total_crosses_too(cat: Catalog) -> None:
    h = cat.h
    item = await cat.limited_item(10)
    version = 1
    for total in (6, 2, 0, 5, 1):  # 10 -> 6 nothing, -> 2 low, -> 0 sold out, -> 5 re-arms, -> 1 low
        reply = await h.call("UpdateItem", pb.UpdateItemRequest(
            request_id=rid(), item_id=item, expected_version=version,
            spec=item_spec(limited_stock=True, stock_total=total)))
        version = reply.item.version
    assert await cat.published() == [
        ("stock_low", item, (2, LOW)),
        ("stock_sold_out", item, (0,)),
        ("stock_low", item, (1, LOW)),
    ]


async def test_unlimited_items_publish_nothing(cat: Catalog) -> None:
    item = (await cat.h.create_item()).item_id
    for n in range(3):
        await cat.h.reserve(item, user=f"u{n}")
    assert await cat.published() == []
