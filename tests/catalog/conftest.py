"""Fixtures: one catalog server per test module on a fresh database, driven by a ManualClock."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from catalog.config import CatalogSettings
from catalog.main import StartedCatalog, start
from points.catalog.v1 import catalog_pb2 as pb
from points.catalog.v1 import catalog_pb2_grpc
from points.common.v1 import common_pb2
from points_platform.client import acting_for, bearer
from points_platform.clock import ManualClock
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
POINTS = common_pb2.CURRENCY_POINTS
COINS = common_pb2.CURRENCY_COINS


def settings(database_url: str) -> CatalogSettings:
    return CatalogSettings(database_url=database_url, port=0, tokens_json=json.dumps(TOKENS), db_pool_size=10)


@dataclass
class Harness:
    """A running catalog plus one stub per caller."""

    started: StartedCatalog
    clock: ManualClock
    channel: grpc.aio.Channel

    def stub(self) -> catalog_pb2_grpc.CatalogServiceAsyncStub:
        return catalog_pb2_grpc.CatalogServiceStub(self.channel)

    async def call(self, method: str, request: Any, caller: str = "admin", user: str = "") -> Any:
        """`user`: the end user an `app` call acts for (user-scoped methods such as Quote)."""
        rpc = getattr(self.stub(), method)
        metadata = bearer(TOKENS[caller])
        return await rpc(request, metadata=acting_for(metadata, user) if user else metadata, timeout=30)

    async def create_item(self, **overrides: Any) -> pb.Item:
        reply: pb.CreateItemResponse = await self.call(
            "CreateItem", pb.CreateItemRequest(request_id=rid(), spec=item_spec(**overrides)))
        return reply.item

    async def reserve(self, item_id: str, user: str = "u1", quantity: int = 1, region: str = "US",
                      ttl: int = 0, request_id: str | None = None) -> pb.Reservation:
        reply: pb.ReserveStockResponse = await self.call(
            "ReserveStock",
            pb.ReserveStockRequest(request_id=request_id or rid(), item_id=item_id, user_id=user,
                                   quantity=quantity, region=region, ttl_seconds=ttl),
            caller="redemption",
        )
        return reply.reservation

    async def commit(self, reservation: pb.Reservation, request_id: str | None = None) -> pb.Reservation:
        reply: pb.CommitReservationResponse = await self.call("CommitReservation", pb.CommitReservationRequest(
            request_id=request_id or rid(), reservation_id=reservation.reservation_id), caller="redemption")
        return reply.reservation

    async def release(self, reservation: pb.Reservation, request_id: str | None = None) -> pb.Reservation:
        reply: pb.ReleaseReservationResponse = await self.call("ReleaseReservation", pb.ReleaseReservationRequest(
            request_id=request_id or rid(), reservation_id=reservation.reservation_id), caller="redemption")
        return reply.reservation

    async def quote(self, item_id: str, user: str = "u1", region: str = "US", quantity: int = 1) -> pb.QuoteResponse:
        reply: pb.QuoteResponse = await self.call(
            "Quote", pb.QuoteRequest(item_id=item_id, user_id=user, region=region, quantity=quantity), caller="app",
            user=user,
        )
        return reply

    async def stock_row(self, item_id: str) -> tuple[int, int, int, int]:
        async with self.started.engine.connect() as conn:
            row = (await conn.execute(
                text("SELECT stock_total, stock_available, stock_reserved, stock_sold FROM items WHERE item_id = :i"),
                {"i": item_id},
            )).one()
        return tuple(int(v) for v in row)  # type: ignore[return-value]


def rid() -> str:
    return f"req-{uuid.uuid4().hex}"


def item_spec(**overrides: Any) -> pb.ItemSpec:
    """A valid cosmetic priced 100 points, offered everywhere, unlimited; override any field."""
    fields: dict[str, Any] = {
        "kind": pb.ITEM_KIND_COSMETIC,
        "title": "Golden frame",
        "description": "A frame",
        "price": common_pb2.Price(currency=POINTS, amount=100),
        "cosmetic": pb.CosmeticAttributes(cosmetic_id="frame-gold"),
    }
    attribute_keys = ("discount", "raffle", "event_access", "gift", "cosmetic")
    if any(k in overrides for k in attribute_keys):
        fields.pop("cosmetic")
    fields.update(overrides)
    return pb.ItemSpec(**fields)


@pytest.fixture(scope="module")
async def catalog(new_database: NewDatabase) -> AsyncIterator[Harness]:
    clock = ManualClock(START)
    started = await start(settings(await new_database("catalog")), clock=clock, run_sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        yield Harness(started, clock, channel)
    finally:
        await channel.close()
        await started.stop()


@pytest.fixture
async def h(catalog: Harness) -> Harness:
    """The module's catalog with the clock back at START."""
    catalog.clock.set(START)
    return catalog
