"""ReturnStock: committed units go back (sold -> available) and off the per-user count, exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from points.catalog.v1 import catalog_pb2 as pb
from tests.catalog.conftest import Harness, rid
from tests.catalog.test_concurrency import outcome
from tests.support.rpc import expect_error

FAILED = grpc.StatusCode.FAILED_PRECONDITION
COMMITTED = pb.RESERVATION_STATE_COMMITTED


async def give_back(h: Harness, reservation_id: str, quantity: int = 0, request_id: str | None = None,
                    caller: str = "redemption") -> pb.ReturnStockResponse:
    reply: pb.ReturnStockResponse = await h.call("ReturnStock", pb.ReturnStockRequest(
        request_id=rid() if request_id is None else request_id, reservation_id=reservation_id,
        quantity=quantity), caller=caller)
    return reply


async def sold(h: Harness, item_id: str, user: str = "u1", quantity: int = 1) -> pb.Reservation:
    return await h.commit(await h.reserve(item_id, user=user, quantity=quantity))


async def test_return_moves_sold_back_to_available_and_frees_the_allowance(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=5, per_user_limit=3)
    r = await sold(h, item.item_id, user="buyer", quantity=3)
    assert await h.stock_row(item.item_id) == (5, 2, 0, 3)
    assert (await h.quote(item.item_id, user="buyer")).user_remaining_allowance == 0

    first = await give_back(h, r.reservation_id, quantity=1)
    assert first.quantity_returned == 1
    assert first.reservation.returned_quantity == 1 and first.reservation.state == COMMITTED
    assert await h.stock_row(item.item_id) == (5, 3, 0, 2)
    assert (await h.quote(item.item_id, user="buyer")).user_remaining_allowance == 1

    rest = await give_back(h, r.reservation_id)  # 0 = everything still returnable
    assert rest.quantity_returned == 2 and rest.reservation.returned_quantity == 3
    assert await h.stock_row(item.item_id) == (5, 5, 0, 0)
    got = (await h.call("GetReservation", pb.GetReservationRequest(reservation_id=r.reservation_id),
                        caller="redemption")).reservation
    assert (got.state, got.returned_quantity) == (COMMITTED, 3)
    # The whole allowance is back: the user can buy 3 again.
    assert (await h.quote(item.item_id, user="buyer")).user_remaining_allowance == 3
    await sold(h, item.item_id, user="buyer", quantity=3)
    assert await h.stock_row(item.item_id) == (5, 2, 0, 3)


async def test_unlimited_item_return_leaves_counters_and_frees_the_allowance(h: Harness) -> None:
    item = await h.create_item(per_user_limit=1)
    r = await sold(h, item.item_id, user="fan")
    await expect_error(h.reserve(item.item_id, user="fan"), FAILED, "PER_USER_LIMIT_REACHED")
    reply = await give_back(h, r.reservation_id)
    assert reply.quantity_returned == 1 and reply.reservation.returned_quantity == 1
    assert await h.stock_row(item.item_id) == (0, 0, 0, 0)
    await h.reserve(item.item_id, user="fan")


async def test_every_refusal_reason(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=10)
    active = await h.reserve(item.item_id, quantity=2)
    await expect_error(give_back(h, active.reservation_id), FAILED, "RESERVATION_NOT_COMMITTED")
    released = await h.release(await h.reserve(item.item_id))
    await expect_error(give_back(h, released.reservation_id), FAILED, "RESERVATION_NOT_COMMITTED")
    h.clock.advance(3600)
    await h.started.reservations.expire_due()
    await expect_error(give_back(h, active.reservation_id), FAILED, "RESERVATION_NOT_COMMITTED")  # expired
    h.clock.advance(-3600)

    r = await sold(h, item.item_id, quantity=2)
    await expect_error(give_back(h, r.reservation_id, quantity=3), FAILED, "RETURN_EXCEEDS_SOLD")
    await give_back(h, r.reservation_id, quantity=2)
    await expect_error(give_back(h, r.reservation_id, quantity=1), FAILED, "RETURN_EXCEEDS_SOLD")
    await expect_error(give_back(h, r.reservation_id), FAILED, "RETURN_EXCEEDS_SOLD")  # nothing left for "all"
    assert await h.stock_row(item.item_id) == (10, 10, 0, 0)  # refusals moved nothing

    await expect_error(give_back(h, "rsv-missing"), grpc.StatusCode.NOT_FOUND, "RESERVATION_NOT_FOUND")
    await expect_error(give_back(h, r.reservation_id, quantity=-1), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(give_back(h, r.reservation_id, request_id=""), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(give_back(h, "", quantity=1), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(give_back(h, r.reservation_id, caller="app"), grpc.StatusCode.PERMISSION_DENIED)


async def test_same_key_replays_the_stored_response_and_different_params_are_refused(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=4)
    r = await sold(h, item.item_id, quantity=3)
    first = await give_back(h, r.reservation_id, quantity=1, request_id="return-key-1")
    await give_back(h, r.reservation_id, quantity=1)  # a later return changes the reservation...
    replay = await give_back(h, r.reservation_id, quantity=1, request_id="return-key-1")
    assert replay == first and replay.reservation.returned_quantity == 1  # ...the replay answers the original
    assert await h.stock_row(item.item_id) == (4, 3, 0, 1)  # and returned nothing more
    await expect_error(give_back(h, r.reservation_id, quantity=0, request_id="return-key-1"),
                       grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    # A refused call stores nothing: the same key is evaluated afresh later.
    await expect_error(give_back(h, r.reservation_id, quantity=5, request_id="return-key-2"),
                       FAILED, "RETURN_EXCEEDS_SOLD")
    assert (await give_back(h, r.reservation_id, quantity=1, request_id="return-key-3")).quantity_returned == 1


async def test_concurrent_returns_with_one_key_apply_once(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=10, per_user_limit=5)
    r = await sold(h, item.item_id, quantity=5)
    replies = await asyncio.gather(*(give_back(h, r.reservation_id, quantity=2, request_id="same-return")
                                     for _ in range(20)))
    assert all(reply == replies[0] for reply in replies) and replies[0].quantity_returned == 2
    assert await h.stock_row(item.item_id) == (10, 7, 0, 3)
    assert (await h.quote(item.item_id)).user_remaining_allowance == 2


async def test_concurrent_returns_with_different_keys_never_return_more_than_sold(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=10)
    r = await sold(h, item.item_id, quantity=5)
    calls: list[Any] = [outcome(give_back(h, r.reservation_id, quantity=1)) for _ in range(12)]
    results = await asyncio.gather(*calls)
    assert Counter(results) == {"OK": 5, "RETURN_EXCEEDS_SOLD": 7}
    assert await h.stock_row(item.item_id) == (10, 10, 0, 0)


async def test_the_database_refuses_impossible_returned_quantities(h: Harness) -> None:
    item = await h.create_item(limited_stock=True, stock_total=5)
    committed = await sold(h, item.item_id, quantity=2)
    active = await h.reserve(item.item_id)
    for reservation_id, returned in ((committed.reservation_id, 3), (committed.reservation_id, -1),
                                     (active.reservation_id, 1)):
        with pytest.raises(IntegrityError):
            async with h.started.engine.begin() as conn:
                await conn.execute(text("UPDATE reservations SET returned_quantity = :n WHERE reservation_id = :r"),
                                   {"n": returned, "r": reservation_id})
