"""Reservations: lifecycle, locked price, exactly-once resolution, expiry, idempotency across restarts."""

from __future__ import annotations

from datetime import timedelta

import grpc

from catalog.main import start
from points.catalog.v1 import catalog_pb2 as pb
from points.common.v1 import common_pb2
from tests.catalog.conftest import POINTS, START, Harness, item_spec, rid, settings
from tests.conftest import NewDatabase
from tests.support.rpc import expect_error
from tests.support.wait import eventually

FAILED = grpc.StatusCode.FAILED_PRECONDITION
ACTIVE, COMMITTED, RELEASED, EXPIRED = (pb.RESERVATION_STATE_ACTIVE, pb.RESERVATION_STATE_COMMITTED,
                                        pb.RESERVATION_STATE_RELEASED, pb.RESERVATION_STATE_EXPIRED)


async def test_reserve_commit_moves_stock_to_sold(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=5)
    r = await h.reserve(item.item_id, quantity=2, ttl=60)
    assert r.state == ACTIVE and r.item_version == 1 and r.total_price.amount == 200
    assert r.expire_time.ToDatetime().replace(tzinfo=START.tzinfo) == START + timedelta(seconds=60)
    assert await h.stock_row(item.item_id) == (5, 3, 2, 0)
    committed = await h.commit(r)
    assert committed.state == COMMITTED and committed.resolve_time.seconds > 0
    assert await h.stock_row(item.item_id) == (5, 3, 0, 2)
    assert (await h.commit(r)).state == COMMITTED  # any later commit answers the same, no double sale
    assert await h.stock_row(item.item_id) == (5, 3, 0, 2)
    await expect_error(h.release(r), FAILED, "RESERVATION_ALREADY_COMMITTED")
    got = (await h.call("GetReservation", pb.GetReservationRequest(reservation_id=r.reservation_id),
                        caller="redemption")).reservation
    assert got.state == COMMITTED


async def test_release_returns_stock_once_and_cannot_be_committed(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=5)
    r = await h.reserve(item.item_id, quantity=2)
    assert (await h.release(r)).state == RELEASED
    assert (await h.release(r)).state == RELEASED
    assert await h.stock_row(item.item_id) == (5, 5, 0, 0)
    await expect_error(h.commit(r), FAILED, "RESERVATION_RELEASED")


async def test_price_change_never_affects_an_existing_reservation(h: Harness) -> None:
    item = await h.create_item(price=common_pb2.Price(currency=POINTS, amount=100))
    r = await h.reserve(item.item_id, quantity=3)
    await h.call("UpdateItem", pb.UpdateItemRequest(
        request_id=rid(), item_id=item.item_id, expected_version=1,
        spec=item_spec(price=common_pb2.Price(currency=POINTS, amount=999))))
    committed = await h.commit(r)
    assert (committed.unit_price.amount, committed.total_price.amount, committed.item_version) == (100, 300, 1)
    assert (await h.reserve(item.item_id)).unit_price.amount == 999


async def test_expired_reservation_cannot_be_committed_even_before_the_sweeper(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=3)
    r = await h.reserve(item.item_id, quantity=1, ttl=30)
    h.clock.advance(30)
    await expect_error(h.commit(r), FAILED, "RESERVATION_EXPIRED")
    assert await h.stock_row(item.item_id) == (3, 2, 1, 0)  # still reserved until swept
    assert await h.started.reservations.expire_due() >= 1
    assert await h.stock_row(item.item_id) == (3, 3, 0, 0)
    await expect_error(h.commit(r), FAILED, "RESERVATION_EXPIRED")
    assert (await h.release(r)).state == EXPIRED  # release of an expired one is a no-op
    assert await h.stock_row(item.item_id) == (3, 3, 0, 0)


async def test_out_of_stock_reclaims_expired_but_unswept_units(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=1)
    first = await h.reserve(item.item_id, user="a", ttl=10)
    await expect_error(h.reserve(item.item_id, user="b"), FAILED, "OUT_OF_STOCK")
    h.clock.advance(10)
    second = await h.reserve(item.item_id, user="b")
    assert second.state == ACTIVE
    got = (await h.call("GetReservation", pb.GetReservationRequest(reservation_id=first.reservation_id),
                        caller="admin")).reservation
    assert got.state == EXPIRED
    assert await h.stock_row(item.item_id) == (1, 0, 1, 0)


async def test_unlimited_items_keep_no_stock_counters(h: Harness) -> None:
    item = await h.create_item()
    r = await h.reserve(item.item_id, quantity=5)
    await h.commit(r)
    assert await h.stock_row(item.item_id) == (0, 0, 0, 0)
    assert (await h.quote(item.item_id)).stock_remaining == -1


async def test_reserve_is_idempotent_and_missing_reservation_is_not_found(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=5)
    key = rid()
    first = await h.reserve(item.item_id, quantity=2, request_id=key)
    again = await h.reserve(item.item_id, quantity=2, request_id=key)
    assert again == first
    assert await h.stock_row(item.item_id) == (5, 3, 2, 0)
    await expect_error(h.reserve(item.item_id, quantity=1, request_id=key), grpc.StatusCode.ALREADY_EXISTS,
                       "IDEMPOTENCY_KEY_REUSED")
    missing = pb.Reservation(reservation_id="rsv-missing")
    await expect_error(h.commit(missing), grpc.StatusCode.NOT_FOUND, "RESERVATION_NOT_FOUND")


async def test_stored_replies_survive_a_restart(h: Harness, new_database: NewDatabase) -> None:
    url = await new_database("catalog_restart")
    first = await start(settings(url), clock=h.clock, run_sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{first.port}")
    own = Harness(first, h.clock, channel)
    item = await own.create_item(limited_stock=True, stock_total=2)
    key = rid()
    reserved = await own.reserve(item.item_id, request_id=key)
    commit_key = rid()
    committed = await own.commit(reserved, request_id=commit_key)
    await channel.close()
    await first.stop()

    second = await start(settings(url), clock=h.clock, run_sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{second.port}")
    own = Harness(second, h.clock, channel)
    try:
        assert await own.reserve(item.item_id, request_id=key) == reserved  # the original ACTIVE reply
        assert await own.commit(reserved, request_id=commit_key) == committed
        assert await own.stock_row(item.item_id) == (2, 1, 0, 1)
    finally:
        await channel.close()
        await second.stop()


async def test_background_sweeper_expires_reservations(h: Harness, new_database: NewDatabase) -> None:
    cfg = settings(await new_database("catalog_sweeper")).model_copy(update={"sweep_interval_seconds": 0.05})
    started = await start(cfg, clock=h.clock, run_sweeper=True)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    own = Harness(started, h.clock, channel)
    try:
        item = await own.create_item(limited_stock=True, stock_total=2)
        r = await own.reserve(item.item_id, quantity=2, ttl=5)
        h.clock.advance(5)

        async def expired() -> bool:
            reply = await own.call("GetReservation", pb.GetReservationRequest(reservation_id=r.reservation_id),
                                   caller="admin")
            return bool(reply.reservation.state == EXPIRED)

        await eventually(expired, what="the background sweeper expired the reservation")
        assert await own.stock_row(item.item_id) == (2, 2, 0, 0)
    finally:
        await channel.close()
        await started.stop()


async def test_two_users_may_send_the_same_request_id(h: Harness) -> None:
    """A request id is unique per user (the idempotency key is (user_id, request_id)): another
    user's request with the same id is another reservation, on both the limited and unlimited path."""
    for limited in (True, False):
        item = await h.create_item(limited_stock=limited, stock_total=5 if limited else 0)
        request_id = rid()
        first = await h.reserve(item.item_id, user="u1", request_id=request_id)
        second = await h.reserve(item.item_id, user="u2", request_id=request_id)
        assert first.reservation_id != second.reservation_id and (first.user_id, second.user_id) == ("u1", "u2")
        assert (await h.reserve(item.item_id, user="u1", request_id=request_id)).reservation_id == first.reservation_id
