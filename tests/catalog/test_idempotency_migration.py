"""Migration 0006 carries the catalog's own stored replies (JSON of the domain result, keyed by
(method, request_id)) into the platform's idempotency table as proto replies: a database holding
rows the old code wrote is upgraded, a retry of each is replayed through the RPC exactly as first
answered, and reusing an old key for another request is still refused."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from alembic import command
from alembic.config import Config
from pydantic import TypeAdapter
from sqlalchemy import text

from catalog.api import FULL_NAME
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
    Reservation,
    ReservationState,
    Stock,
)
from catalog.main import MIGRATIONS, start
from catalog.store.rows import attributes_to_json
from points.catalog.v1 import catalog_pb2 as pb
from points.catalog.v1 import catalog_pb2_grpc
from points.common.v1 import common_pb2
from points_platform.client import bearer
from points_platform.clock import ManualClock
from points_platform.db import create_engine, ensure_database
from points_platform.idempotency import method_name, request_fingerprint
from points_platform.validation import fingerprint
from tests.catalog.conftest import item_spec, settings
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.rpc import expect_error, ts

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _upgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, revision)


def _old_item_snapshot(item: Item) -> bytes:
    """An Item as the old code stored its reply: JSON, the attributes union under its name."""
    data: dict[str, Any] = TypeAdapter(Item).dump_python(item, mode="json")
    data["spec"]["attributes"] = attributes_to_json(item.spec.attributes)
    return json.dumps(data).encode()


async def test_old_json_replies_are_replayed_as_proto_and_their_keys_still_refuse_reuse(
    new_database: NewDatabase,
) -> None:
    url = await new_database("catalog")
    await ensure_database(url)
    await asyncio.to_thread(_upgrade, url, "0005")

    create = pb.CreateItemRequest(request_id="old-create", spec=item_spec(title="Old frame"))
    item = Item("item-old", 1, ItemSpec(
        kind=ItemKind.COSMETIC, title="Old frame", description="A frame", price=Price(Currency.POINTS, 100),
        regions=(), available_from=None, available_until=None, limited_stock=False, stock_total=0,
        per_user_limit=0, per_user_limit_window=LimitWindow.LIFETIME,
        attributes=CosmeticAttributes("frame-gold", limited_edition=False),
    ), Stock(0, 0, 0, 0), archived=False, create_time=WHEN, update_time=WHEN)
    reserve = pb.ReserveStockRequest(request_id="old-reserve", item_id="item-old", user_id="u-old", quantity=2,
                                     region="US")
    reservation = Reservation(
        reservation_id="rsv-old", item_id="item-old", item_version=1, user_id="u-old", region="US", quantity=2,
        unit_price=Price(Currency.POINTS, 90), total_price=Price(Currency.POINTS, 180), campaign_id="campaign-old",
        state=ReservationState.ACTIVE, expire_time=WHEN + timedelta(minutes=5), create_time=WHEN,
        resolve_time=None, took_stock=False,
    )
    end = pb.EndCampaignRequest(request_id="old-end", campaign_id="campaign-old")
    campaign = Campaign("campaign-old", CampaignSpec(
        name="Autumn", sponsor="Acme", start_time=WHEN - timedelta(days=1), end_time=WHEN + timedelta(days=1),
        regions=("US",), item_ids=("item-old",), percent_off_bps=1000, fixed_price=None,
    ), WHEN - timedelta(days=2), ended_time=WHEN)
    old_rows: list[tuple[str, Any, bytes]] = [
        ("CreateItem", create, _old_item_snapshot(item)),
        ("ReserveStock", reserve, TypeAdapter(Reservation).dump_json(reservation)),
        ("EndCampaign", end, TypeAdapter(Campaign).dump_json(campaign)),
    ]
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for method, request, snapshot in old_rows:
                await conn.execute(text(
                    "INSERT INTO idempotency (method, request_id, fingerprint, response, create_time) "
                    "VALUES (:m, :r, :f, :b, :t)"),
                    {"m": method, "r": request.request_id, "f": fingerprint(request), "b": snapshot, "t": WHEN})
        await asyncio.to_thread(_upgrade, url, "head")
        async with engine.connect() as conn:
            rows = {r.request_id: r for r in (await conn.execute(text(
                "SELECT user_id, request_id, method, fingerprint, reply, created_time FROM idempotency"))).all()}
    finally:
        await engine.dispose()

    assert set(rows) == {"old-create", "old-reserve", "old-end"}
    for method, request, _ in old_rows:
        row, full = rows[request.request_id], method_name(FULL_NAME, method)
        assert (row.method, row.fingerprint, row.created_time) == (full, request_fingerprint(full, request), WHEN)
    assert (rows["old-reserve"].user_id, rows["old-create"].user_id, rows["old-end"].user_id) == ("u-old", "", "")

    started = await start(settings(url), clock=ManualClock(WHEN + timedelta(minutes=1)), run_sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        admin, redemption = bearer(TOKENS["admin"]), bearer(TOKENS["redemption"])
        # None of these exists outside the idempotency table: the answers are the stored replies.
        created = (await stub.CreateItem(create, metadata=admin)).item
        assert (created.item_id, created.title, created.cosmetic.cosmetic_id) == ("item-old", "Old frame", "frame-gold")
        assert created.create_time == ts(WHEN)
        reserved = (await stub.ReserveStock(reserve, metadata=redemption)).reservation
        assert (reserved.reservation_id, reserved.user_id, reserved.quantity, reserved.campaign_id) == (
            "rsv-old", "u-old", 2, "campaign-old")
        assert (reserved.unit_price, reserved.total_price, reserved.state) == (
            common_pb2.Price(currency=common_pb2.CURRENCY_POINTS, amount=90),
            common_pb2.Price(currency=common_pb2.CURRENCY_POINTS, amount=180), pb.RESERVATION_STATE_ACTIVE)
        ended = (await stub.EndCampaign(end, metadata=admin)).campaign
        assert (ended.campaign_id, ended.sponsor, ended.ended_time, list(ended.item_ids)) == (
            "campaign-old", "Acme", ts(WHEN), ["item-old"])

        other_quantity = pb.ReserveStockRequest()
        other_quantity.CopyFrom(reserve)
        other_quantity.quantity = 3
        await expect_error(stub.ReserveStock(other_quantity, metadata=redemption), grpc.StatusCode.ALREADY_EXISTS,
                           "IDEMPOTENCY_KEY_REUSED")
        other_method = pb.UpdateItemRequest(request_id="old-create", item_id="item-old", spec=item_spec())
        await expect_error(stub.UpdateItem(other_method, metadata=admin), grpc.StatusCode.ALREADY_EXISTS,
                           "IDEMPOTENCY_KEY_REUSED")
    finally:
        await channel.close()
        await started.stop()
