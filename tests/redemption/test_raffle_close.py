"""Raffles close their sales before the draw: no ticket is sold (or refunded) once the entries are
final, the seed is committed at or before the close, and the draw waits for the close and for every
ticket still in flight. Time moves only on the suite's ManualClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest

from points.catalog.v1 import catalog_pb2
from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as rpb
from points_platform.client import acting_for, error_info
from tests.redemption.conftest import POINTS, Suite, md, uid
from tests.redemption.test_redeem import step_names
from tests.support.rpc import expect_error, ts

FAILED = grpc.StatusCode.FAILED_PRECONDITION
COMPLETED = rpb.REDEMPTION_STATE_COMPLETED


@pytest.fixture
async def rewind(suite: Suite) -> AsyncIterator[None]:
    """The suite's clock is shared by the module: put it back after a test moved it."""
    start = suite.clock.now()
    yield
    suite.clock.set(start)


def raffle_spec(raffle_id: str, *, now: datetime, close_in: float | None, draw_in: float,
                **extra: Any) -> catalog_pb2.ItemSpec:
    """A 5-point ticket drawn `draw_in` seconds after `now`, its sales closing `close_in` after it (None: unset)."""
    attributes: dict[str, Any] = {"raffle_id": raffle_id, "winners": 1,
                                  "draw_time": ts(now + timedelta(seconds=draw_in))}
    if close_in is not None:
        attributes["sales_close_time"] = ts(now + timedelta(seconds=close_in))
    return catalog_pb2.ItemSpec(kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET, title="raffle ticket",
                                price=common_pb2.Price(currency=POINTS, amount=5),
                                raffle=catalog_pb2.RaffleAttributes(**attributes), **extra)


async def raffle(suite: Suite, *, close_in: float | None, draw_in: float, **extra: Any) -> tuple[catalog_pb2.Item, str]:
    raffle_id = uid("raffle")
    spec = raffle_spec(raffle_id, close_in=close_in, draw_in=draw_in, now=suite.clock.now(), **extra)
    reply = await suite.catalog_stub.CreateItem(catalog_pb2.CreateItemRequest(request_id=uid("item"), spec=spec),
                                                metadata=md("admin"))
    return reply.item, raffle_id


async def prepare(suite: Suite, raffle_id: str) -> rpb.RaffleDraw:
    return (await suite.stub.PrepareRaffleDraw(rpb.PrepareRaffleDrawRequest(
        request_id=uid("prep"), raffle_id=raffle_id), metadata=md("admin"))).draw


async def draw(suite: Suite, raffle_id: str) -> rpb.RaffleDraw:
    return (await suite.stub.DrawRaffle(rpb.DrawRaffleRequest(
        request_id=uid("draw"), raffle_id=raffle_id), metadata=md("admin"))).draw


async def redemptions_of(suite: Suite, user: str) -> list[rpb.Redemption]:
    reply = await suite.stub.ListRedemptions(rpb.ListRedemptionsRequest(user_id=user),
                                             metadata=acting_for(md("app"), user))
    return list(reply.redemptions)


async def test_a_ticket_after_the_close_is_refused_with_nothing_reserved_or_held(suite: Suite, rewind: None) -> None:
    item, raffle_id = await raffle(suite, close_in=3600, draw_in=7200, limited_stock=True, stock_total=10)
    at_draw, _ = await raffle(suite, close_in=None, draw_in=7200)  # no close time: sales close at the draw
    user = uid("u")
    await suite.fund(user, 100)
    first_request = uid("redeem")
    first = await suite.redeem(user, item.item_id, request_id=first_request)
    assert first.state == COMPLETED, step_names(first)

    suite.clock.advance(3600)  # the close instant itself: sales are over
    refused = await expect_error(suite.redeem(user, item.item_id), FAILED, "RAFFLE_CLOSED")
    info = error_info(refused)
    assert info is not None and info.metadata["raffle_id"] == raffle_id
    assert (await suite.balance(user)).available == 95 and (await suite.balance(user)).held == 0
    stock = await suite.get_item(item.item_id)
    assert (stock.stock_available, stock.stock_reserved, stock.stock_sold) == (9, 0, 1)
    assert [r.redemption_id for r in await redemptions_of(suite, user)] == [first.redemption_id]
    # A retry of the Redeem made before the close still answers with its redemption.
    replay = await suite.redeem(user, item.item_id, request_id=first_request)
    assert (replay.redemption_id, replay.state) == (first.redemption_id, COMPLETED)

    assert (await suite.redeem(user, at_draw.item_id)).state == COMPLETED
    suite.clock.advance(3600)  # the draw time of the raffle without a close time
    await expect_error(suite.redeem(user, at_draw.item_id), FAILED, "RAFFLE_CLOSED")
    assert (await suite.balance(user)).available == 90 and (await suite.balance(user)).held == 0


async def test_a_ticket_reserved_before_the_close_but_paid_after_it_is_cancelled(
    suite: Suite, rewind: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raffle closes while the saga holds the funds: COMMIT_FUNDS refuses (RAFFLE_CLOSED), the
    saga compensates, and the user keeps the points, the stock its unit."""
    item, _ = await raffle(suite, close_in=10, draw_in=30, limited_stock=True, stock_total=10)
    user = uid("u")
    await suite.fund(user, 100)
    wallet = suite.redemption.service.runner.wallet
    hold_funds = wallet.reserve

    async def hold_then_close(*args: Any, **kwargs: Any) -> Any:
        hold = await hold_funds(*args, **kwargs)
        suite.clock.advance(10)
        return hold

    monkeypatch.setattr(wallet, "reserve", hold_then_close)
    cancelled = await suite.redeem(user, item.item_id)
    assert (cancelled.state, cancelled.cancel_reason) == (rpb.REDEMPTION_STATE_CANCELLED, "RAFFLE_CLOSED")
    assert "COMMIT_FUNDS:FAILED" in step_names(cancelled)
    balance = await suite.balance(user)
    assert (balance.available, balance.held) == (100, 0)
    stock = await suite.get_item(item.item_id)
    assert (stock.stock_available, stock.stock_reserved, stock.stock_sold) == (10, 0, 0)
    assert [e.state for e in await suite.entitlements(user)] == [rpb.ENTITLEMENT_STATE_REVOKED]


async def test_the_commitment_is_published_at_or_before_the_close(suite: Suite, rewind: None) -> None:
    _, on_time = await raffle(suite, close_in=3600, draw_in=7200)
    _, late = await raffle(suite, close_in=3600, draw_in=7200)
    suite.clock.advance(3600)
    committed = await prepare(suite, on_time)  # at the close instant: still in time
    assert committed.state == rpb.RAFFLE_DRAW_STATE_PREPARED
    suite.clock.advance(1)
    refused = await expect_error(prepare(suite, late), FAILED, "RAFFLE_CLOSED")
    info = error_info(refused)
    assert info is not None and info.metadata["raffle_id"] == late and info.metadata["sales_close_time"]
    await expect_error(suite.stub.GetRaffleDraw(rpb.GetRaffleDrawRequest(raffle_id=late), metadata=md("admin")),
                       grpc.StatusCode.NOT_FOUND, "RAFFLE_NOT_PREPARED")
    assert (await prepare(suite, on_time)).seed_hash == committed.seed_hash  # preparing again: the same


async def test_the_draw_waits_for_the_close_and_for_tickets_in_flight(
    suite: Suite, rewind: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ticket whose funds are committed but whose saga has not recorded it yet is a paid entry: the
    draw refuses (RAFFLE_ENTRIES_PENDING) until it completes, then draws it. A close moved later after
    the commitment holds the draw back (RAFFLE_NOT_CLOSED). After the draw nothing more is sold."""
    item, raffle_id = await raffle(suite, close_in=20, draw_in=30)
    early, late, after = uid("u"), uid("u"), uid("u")
    for user in (early, late, after):
        await suite.fund(user, 100)
    assert (await suite.redeem(early, item.item_id)).state == COMPLETED

    wallet = suite.redemption.service.runner.wallet
    commit_funds = wallet.commit
    committed, go_on = asyncio.Event(), asyncio.Event()

    async def commit_then_stall(*args: Any, **kwargs: Any) -> Any:
        hold = await commit_funds(*args, **kwargs)  # the funds are committed ...
        committed.set()
        await go_on.wait()  # ... and the saga has not recorded it yet
        return hold

    monkeypatch.setattr(wallet, "commit", commit_then_stall)
    in_flight = asyncio.create_task(suite.redeem(late, item.item_id))
    await asyncio.wait_for(committed.wait(), 10)
    prepared = await prepare(suite, raffle_id)

    moved = raffle_spec(raffle_id, close_in=40, draw_in=50, now=suite.clock.now())
    await suite.catalog_stub.UpdateItem(catalog_pb2.UpdateItemRequest(
        request_id=uid("upd"), item_id=item.item_id, spec=moved), metadata=md("admin"))
    suite.clock.advance(30)  # the committed draw time, but sales now close at +40
    await expect_error(draw(suite, raffle_id), FAILED, "RAFFLE_NOT_CLOSED")
    suite.clock.advance(10)
    pending = await expect_error(draw(suite, raffle_id), FAILED, "RAFFLE_ENTRIES_PENDING")
    info = error_info(pending)
    assert info is not None and info.metadata["pending_tickets"] == "1"

    go_on.set()
    assert (await in_flight).state == COMPLETED
    drawn = await draw(suite, raffle_id)
    assert drawn.state == rpb.RAFFLE_DRAW_STATE_DRAWN and drawn.seed_hash == prepared.seed_hash
    assert drawn.ticket_count == 2 and set(drawn.winner_user_ids) <= {early, late}

    # Drawn is closed, even if the item's close were moved later again (read fresh, not from the cache).
    reopened = raffle_spec(raffle_id, close_in=3600, draw_in=7200, now=suite.clock.now())
    await suite.catalog_stub.UpdateItem(catalog_pb2.UpdateItemRequest(
        request_id=uid("upd"), item_id=item.item_id, spec=reopened), metadata=md("admin"))
    suite.redemption.service.runner._items.clear()
    await expect_error(suite.redeem(after, item.item_id), FAILED, "RAFFLE_CLOSED")
    assert (await suite.balance(after)).available == 100


async def test_a_committed_raffles_tickets_are_not_refunded_between_close_and_draw(suite: Suite, rewind: None) -> None:
    item, raffle_id = await raffle(suite, close_in=3600, draw_in=7200)
    never_committed, _ = await raffle(suite, close_in=3600, draw_in=7200)
    user = uid("u")
    await suite.fund(user, 100)
    before_close, kept, uncommitted = [await suite.redeem(user, i) for i in
                                       (item.item_id, item.item_id, never_committed.item_id)]
    refunded = await refund(suite, before_close.redemption_id)  # sales open: the entries may change
    assert refunded.state == rpb.REDEMPTION_STATE_REFUNDED
    await prepare(suite, raffle_id)
    suite.clock.advance(3601)
    await expect_error(refund(suite, kept.redemption_id), FAILED, "RAFFLE_CLOSED")
    # A raffle never committed to can never be drawn: its tickets stay refundable.
    assert (await refund(suite, uncommitted.redemption_id)).state == rpb.REDEMPTION_STATE_REFUNDED
    assert (await suite.balance(user)).available == 95


async def refund(suite: Suite, redemption_id: str) -> rpb.Redemption:
    reply = await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
        request_id=uid("refund"), redemption_id=redemption_id, reason="support"), metadata=md("admin"), timeout=20)
    return reply.redemption
