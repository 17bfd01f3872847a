"""Two catalog servers on one database: what one changes, the very next Quote on the other prices.

Each server keeps items and campaigns in memory (`catalog.store.memory`); a change is acknowledged
only once every live reader has dropped what it replaced, so the tests need no waiting between the
change and the quote. `memory.recall` shows what a server serves from memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text

from catalog.config import CatalogSettings
from catalog.main import start
from catalog.store.memory import NotifiedMemory
from points.catalog.v1 import catalog_pb2 as pb
from points.common.v1 import common_pb2
from points_platform.clock import ManualClock
from tests.catalog.conftest import POINTS, START, Harness, item_spec, rid
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.rpc import ts
from tests.support.wait import eventually

# Long enough that no lease runs out during a test: a reader that is behind holds a change up.
LEASE_SECONDS = 120.0


class Gate:
    """The memory's pause between reconnections, opened by the test (one reconnection per opening)."""

    def __init__(self) -> None:
        self.waiting = 0
        self._open = asyncio.Event()

    async def __call__(self) -> None:
        self.waiting += 1
        await self._open.wait()
        self._open.clear()
        self.waiting -= 1

    def open(self) -> None:
        self._open.set()


@dataclass
class Pair:
    a: Harness
    b: Harness
    gate: Gate  # b's reconnections

    @staticmethod
    def memory(h: Harness) -> NotifiedMemory:
        return h.started.wiring.memory


@pytest.fixture(scope="module")
async def pair(new_database: NewDatabase) -> AsyncIterator[Pair]:
    url = await new_database("catalog")
    gate = Gate()
    harnesses: list[Harness] = []
    try:
        for pool, retry in ((10, None), (2, gate)):
            settings = CatalogSettings(database_url=url, port=0, tokens_json=json.dumps(TOKENS),
                                       db_pool_size=pool, memory_lease_seconds=LEASE_SECONDS)
            clock = ManualClock(START)
            started = await start(settings, clock=clock, run_sweeper=False, memory_retry=retry)
            harnesses.append(Harness(started, clock, grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")))
        pair = Pair(harnesses[0], harnesses[1], gate)
        await eventually(lambda: _live(pair), what="both servers serve from memory")
        yield pair
    finally:
        for h in harnesses:
            await h.channel.close()
            await h.started.stop()


async def _live(pair: Pair) -> bool:
    return Pair.memory(pair.a).is_live() and Pair.memory(pair.b).is_live()


async def _remembered(h: Harness, item_id: str, quoted: pb.QuoteResponse) -> pb.QuoteResponse:
    """Quote twice: the first loads the item into memory, the second is answered from it."""
    first = await h.quote(item_id)
    assert first.unit_price == quoted.unit_price and first.campaign_id == quoted.campaign_id
    assert Pair.memory(h).recall(item_id) is not None
    return await h.quote(item_id)


async def _campaign(h: Harness, item_id: str, percent_off_bps: int) -> pb.Campaign:
    spec = pb.CampaignSpec(name="c", sponsor="Acme", item_ids=[item_id], start_time=ts(START - timedelta(days=1)),
                           end_time=ts(START + timedelta(days=1)), percent_off_bps=percent_off_bps)
    reply: pb.CreateCampaignResponse = await h.call("CreateCampaign", pb.CreateCampaignRequest(request_id=rid(),
                                                                                               spec=spec))
    return reply.campaign


def _price(amount: int) -> common_pb2.Price:
    return common_pb2.Price(currency=POINTS, amount=amount)


async def test_a_change_through_one_server_is_quoted_by_the_other_at_once(pair: Pair) -> None:
    a, b = pair.a, pair.b
    item = await a.create_item(price=_price(1000))
    await _remembered(b, item.item_id, pb.QuoteResponse(unit_price=_price(1000)))

    await a.call("UpdateItem", pb.UpdateItemRequest(request_id=rid(), item_id=item.item_id,
                                                    spec=item_spec(price=_price(700))))
    assert (await b.quote(item.item_id)).unit_price.amount == 700
    await _remembered(b, item.item_id, pb.QuoteResponse(unit_price=_price(700)))

    sale = await _campaign(a, item.item_id, percent_off_bps=2000)
    quote = await b.quote(item.item_id)
    assert (quote.unit_price.amount, quote.campaign_id) == (560, sale.campaign_id)
    await _remembered(b, item.item_id, quote)

    await a.call("EndCampaign", pb.EndCampaignRequest(request_id=rid(), campaign_id=sale.campaign_id))
    quote = await b.quote(item.item_id)
    assert (quote.unit_price.amount, quote.campaign_id) == (700, "")

    # And the other way round: a change through b is seen by a.
    await _remembered(a, item.item_id, quote)
    await b.call("UpdateItem", pb.UpdateItemRequest(request_id=rid(), item_id=item.item_id, spec=item_spec(),
                                                    archived=True))
    quote = await a.quote(item.item_id)
    assert (quote.redeemable, quote.unavailable_reason) == (False, "ITEM_ARCHIVED")


async def test_an_item_created_through_one_server_is_found_by_the_other(pair: Pair) -> None:
    """An unknown item is remembered as unknown, until an item is created."""
    item_id = "item-not-yet"
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await pair.b.quote(item_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert Pair.memory(pair.b).recall(item_id) is not None
    created = await pair.a.create_item()
    assert (await pair.b.quote(created.item_id)).redeemable


async def test_a_remembered_unlimited_item_is_quoted_without_the_database(pair: Pair) -> None:
    """b's whole pool is held: a quote answered is a quote that needed no connection. A limited item
    and a per-user limit still read what moves (stock, the user's count) when a connection is free."""
    a, b = pair.a, pair.b
    unlimited = await a.create_item(price=_price(300))
    limited = await a.create_item(limited_stock=True, stock_total=5, per_user_limit=3)
    await _remembered(b, unlimited.item_id, pb.QuoteResponse(unit_price=_price(300)))
    await _remembered(b, limited.item_id, pb.QuoteResponse(unit_price=_price(100)))

    async with b.started.engine.connect(), b.started.engine.connect():  # db_pool_size=2: all of it
        quote = await b.quote(unlimited.item_id)
        assert (quote.redeemable, quote.unit_price.amount, quote.stock_remaining) == (True, 300, -1)

    await a.reserve(limited.item_id, user="u1", quantity=2)
    quote = await b.quote(limited.item_id, user="u1")
    assert (quote.stock_remaining, quote.user_remaining_allowance) == (3, 1)


async def test_a_lost_listening_connection_drops_the_memory(pair: Pair) -> None:
    """b's listening connection is killed; a change made while b is away (b misses its notification)
    is acknowledged only once b is back, and b, back, quotes the new price, not what it remembered."""
    a, b = pair.a, pair.b
    item = await a.create_item(price=_price(1000))
    await _remembered(b, item.item_id, pb.QuoteResponse(unit_price=_price(1000)))

    async with a.started.engine.connect() as conn:
        killed = (await conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :r"),
            {"r": Pair.memory(b).reader_id})).scalars().all()
    assert killed == [True]
    await eventually(lambda: _at_gate(pair), what="b noticed the lost connection and waits to reconnect")
    assert Pair.memory(b).recall(item.item_id) is None  # not live: every read goes to the database

    update = asyncio.create_task(a.call("UpdateItem", pb.UpdateItemRequest(
        request_id=rid(), item_id=item.item_id, spec=item_spec(price=_price(400)))))
    await eventually(lambda: _price_stored(a, item.item_id, 400), what="the update committed")
    assert (await b.quote(item.item_id)).unit_price.amount == 400  # from the database meanwhile
    assert not update.done()  # b still holds a lease on a version before the change

    pair.gate.open()
    await update  # b is back at the current version
    assert Pair.memory(b).is_live()
    await _remembered(b, item.item_id, pb.QuoteResponse(unit_price=_price(400)))


async def _at_gate(pair: Pair) -> bool:
    return pair.gate.waiting == 1 and not Pair.memory(pair.b).is_live()


async def _price_stored(h: Harness, item_id: str, amount: int) -> bool:
    async with h.started.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT price_amount FROM items WHERE item_id = :i"),
                                     {"i": item_id})).scalar_one()
    return bool(stored == amount)
