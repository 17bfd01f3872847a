"""Migration 0004 carries the service's own stored replies into the platform's idempotency table: a
database holding rows the old code wrote is upgraded, and a retry of one is replayed through the RPC
while reusing its key for another request is still refused."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import grpc
from alembic import command
from alembic.config import Config
from google.protobuf import timestamp_pb2
from sqlalchemy import text

from points.redemption.v1 import redemption_pb2 as pb
from points.redemption.v1 import redemption_pb2_grpc
from points_platform.client import bearer
from points_platform.clock import ManualClock
from points_platform.db import create_engine, ensure_database
from points_platform.idempotency import method_name, request_fingerprint
from points_platform.validation import fingerprint
from redemption.api import FULL_NAME
from redemption.config import RedemptionSettings
from redemption.main import MIGRATIONS, start
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.rpc import expect_error

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _upgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, revision)


def _drawn(raffle_id: str) -> pb.DrawRaffleResponse:
    """A reply as the old code stored it (its proto bytes): the raffle exists nowhere else."""
    drawn_at = timestamp_pb2.Timestamp()
    drawn_at.FromDatetime(WHEN)
    return pb.DrawRaffleResponse(draw=pb.RaffleDraw(
        raffle_id=raffle_id, seed_hash="ab" * 32, seed="cd" * 32, winner_entitlement_ids=["e1"],
        winner_user_ids=["u1"], ticket_count=3, draw_time=drawn_at, state=pb.RAFFLE_DRAW_STATE_DRAWN))


async def test_old_stored_replies_are_replayed_and_their_keys_still_refuse_reuse(new_database: NewDatabase) -> None:
    url = await new_database("redemption")
    await ensure_database(url)
    await asyncio.to_thread(_upgrade, url, "0003")
    draw_request = pb.DrawRaffleRequest(request_id="old-draw", raffle_id="raffle-old")
    prepare_request = pb.PrepareRaffleDrawRequest(request_id="old-prepare", raffle_id="raffle-old")
    stored = _drawn("raffle-old")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for request, method, reply in ((draw_request, "DrawRaffle", stored.SerializeToString()),
                                           (prepare_request, "PrepareRaffleDraw", b"\x0a\x00")):
                await conn.execute(text(
                    "INSERT INTO idempotency (request_id, method, fingerprint, response, create_time) "
                    "VALUES (:r, :m, :f, :b, :t)"),
                    {"r": request.request_id, "m": method, "f": fingerprint(request), "b": reply, "t": WHEN})
        await asyncio.to_thread(_upgrade, url, "head")
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT user_id, request_id, method, fingerprint, reply, created_time FROM idempotency "
                "ORDER BY request_id"))).all()
    finally:
        await engine.dispose()
    draw_method, prepare_method = method_name(FULL_NAME, "DrawRaffle"), method_name(FULL_NAME, "PrepareRaffleDraw")
    assert [tuple(r) for r in rows] == [
        ("", "old-draw", draw_method, request_fingerprint(draw_method, draw_request), stored.SerializeToString(),
         WHEN),
        ("", "old-prepare", prepare_method, request_fingerprint(prepare_method, prepare_request), b"\x0a\x00", WHEN),
    ]

    # Peers that do not answer: a replay must not need them.
    started = await start(RedemptionSettings(
        database_url=url, port=0, tokens_json=json.dumps(TOKENS), wallet_target="127.0.0.1:9",
        catalog_target="127.0.0.1:9"), clock=ManualClock(WHEN), recovery=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        stub = redemption_pb2_grpc.RedemptionServiceStub(channel)
        admin = bearer(TOKENS["admin"])
        assert await stub.DrawRaffle(draw_request, metadata=admin) == stored
        other_raffle = pb.DrawRaffleRequest(request_id="old-draw", raffle_id="raffle-new")
        await expect_error(stub.DrawRaffle(other_raffle, metadata=admin), grpc.StatusCode.ALREADY_EXISTS,
                           "IDEMPOTENCY_KEY_REUSED")
        other_method = pb.PrepareRaffleDrawRequest(request_id="old-draw", raffle_id="raffle-old")
        await expect_error(stub.PrepareRaffleDraw(other_method, metadata=admin), grpc.StatusCode.ALREADY_EXISTS,
                           "IDEMPOTENCY_KEY_REUSED")
    finally:
        await channel.close()
        await started.stop()
