"""Refunds (own idempotent saga) and raffle draws (committed seed, reproducible, exactly once)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import grpc
import pytest

from points.catalog.v1 import catalog_pb2
from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as rpb
from points.wallet.v1 import wallet_pb2
from points_platform.client import acting_for, error_reason
from redemption.domain.raffle import draw_winners
from tests.redemption.conftest import COINS, POINTS, Suite, cosmetic_spec, md, uid
from tests.redemption.test_redeem import step_names
from tests.support.rpc import ts


async def refund(suite: Suite, redemption_id: str, request_id: str, reason: str = "support") -> rpb.Redemption:
    reply = await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
        request_id=request_id, redemption_id=redemption_id, reason=reason), metadata=md("admin"), timeout=20)
    return reply.redemption


async def test_refund_credits_points_revokes_entitlement_and_replays(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 300)
    item = await suite.item(**cosmetic_spec(price=120))
    done = await suite.redeem(user, item.item_id)
    assert (await suite.balance(user)).available == 180
    refunded = await refund(suite, done.redemption_id, "refund-" + user)
    assert refunded.state == rpb.REDEMPTION_STATE_REFUNDED and refunded.refund_reason == "support"
    # Unlimited stock, no per-user limit: nothing was reserved, so nothing is returned.
    last = refunded.steps[-1]
    assert (last.name, last.outcome) == (rpb.SAGA_STEP_NAME_RETURN_STOCK, rpb.STEP_OUTCOME_SKIPPED), last
    assert (await suite.balance(user)).available == 300
    assert [e.state for e in await suite.entitlements(user)] == [rpb.ENTITLEMENT_STATE_REVOKED]
    # The refund credit names its redemption (the wallet refuses a POINTS credit outside earning without one).
    history = await suite.wallet_stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(user_id=user, currency=POINTS), metadata=md("admin"))
    assert [(e.kind, e.amount, e.reason, e.reference) for e in history.entries[:1]] == [
        (wallet_pb2.TRANSACTION_KIND_CREDIT, 120, "refund", done.redemption_id)]
    replay = await refund(suite, done.redemption_id, "refund-" + user)
    assert replay.state == rpb.REDEMPTION_STATE_REFUNDED
    assert (await suite.balance(user)).available == 300  # credited once
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await refund(suite, done.redemption_id, "refund-" + user, reason="other")
    assert error_reason(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await refund(suite, done.redemption_id, "refund-again-" + user)
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(twice.value) == "ALREADY_REFUNDED"


async def test_a_coin_priced_redemption_is_refunded_through_the_wallet_hold(suite: Suite) -> None:
    """Coins cannot be credited by redemption (only payments may): the wallet gives back the committed
    hold's debit instead, once, and the hold records it."""
    user = uid("u")
    await suite.fund(user, 500, COINS)
    item = await suite.item(**cosmetic_spec(price=200, currency=COINS))
    done = await suite.redeem(user, item.item_id)
    assert done.state == rpb.REDEMPTION_STATE_COMPLETED
    assert (await suite.balance(user, COINS)).available == 300
    refunded = await refund(suite, done.redemption_id, "refund-coins-" + user)
    assert refunded.state == rpb.REDEMPTION_STATE_REFUNDED, step_names(refunded)
    assert (await suite.balance(user, COINS)).available == 500
    await refund(suite, done.redemption_id, "refund-coins-" + user)  # replay: nothing more
    assert (await suite.balance(user, COINS)).available == 500
    hold = (await suite.wallet_stub.GetHold(wallet_pb2.GetHoldRequest(hold_id=done.hold_id), metadata=md("admin"))).hold
    assert (hold.committed_amount, hold.refunded_amount) == (200, 200)
    history = await suite.wallet_stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(user_id=user, currency=COINS), metadata=md("admin"))
    assert [(e.kind, e.amount) for e in history.entries[:2]] == [
        (wallet_pb2.TRANSACTION_KIND_REFUND, 200), (wallet_pb2.TRANSACTION_KIND_HOLD_COMMIT, -200),
    ]
    assert [e.state for e in await suite.entitlements(user)] == [rpb.ENTITLEMENT_STATE_REVOKED]


async def test_refund_returns_the_stock_and_the_per_user_allowance_exactly(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 1000)
    item = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=5, per_user_limit=2))
    done = await suite.redeem(user, item.item_id, quantity=2)
    assert done.state == rpb.REDEMPTION_STATE_COMPLETED
    sold = await suite.get_item(item.item_id)
    assert (sold.stock_available, sold.stock_reserved, sold.stock_sold) == (3, 0, 2)
    over_limit = await suite.redeem(user, item.item_id)
    assert over_limit.cancel_reason == "PER_USER_LIMIT_REACHED"

    refunded = await refund(suite, done.redemption_id, "refund-stock-" + user)
    assert refunded.state == rpb.REDEMPTION_STATE_REFUNDED
    assert step_names(refunded)[-2:] == ["RETURN_STOCK:STARTED", "RETURN_STOCK:SUCCEEDED"]
    assert not [s for s in step_names(refunded) if s.endswith("SKIPPED")]
    back = await suite.get_item(item.item_id)
    assert (back.stock_available, back.stock_reserved, back.stock_sold) == (5, 0, 0)
    reservation = (await suite.catalog_stub.GetReservation(catalog_pb2.GetReservationRequest(
        reservation_id=done.reservation_id), metadata=md("redemption"))).reservation
    assert (reservation.state, reservation.returned_quantity) == (catalog_pb2.RESERVATION_STATE_COMMITTED, 2)
    # The allowance is free again: the user may redeem the same 2 units once more.
    quote = (await suite.catalog_stub.Quote(catalog_pb2.QuoteRequest(
        item_id=item.item_id, user_id=user, region="US", quantity=2), metadata=acting_for(md("app"), user)))
    assert quote.user_remaining_allowance == 2
    again = await suite.redeem(user, item.item_id, quantity=2)
    assert again.state == rpb.REDEMPTION_STATE_COMPLETED
    after = await suite.get_item(item.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (3, 0, 2)
    # A replayed refund returns nothing more.
    await refund(suite, done.redemption_id, "refund-stock-" + user)
    assert (await suite.get_item(item.item_id)).stock_sold == 2


async def test_refund_rules(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 300)
    item = await suite.item(**cosmetic_spec(price=10, limited_stock=True, stock_total=1))
    done = await suite.redeem(user, item.item_id)
    cancelled = await suite.redeem(user, item.item_id)
    with pytest.raises(grpc.aio.AioRpcError) as not_done:
        await refund(suite, cancelled.redemption_id, uid("r"))
    assert error_reason(not_done.value) == "NOT_COMPLETED"
    suite.clock.advance(suite.redemption.service.settings.refund_window_seconds + 1)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await refund(suite, done.redemption_id, uid("r"))
        assert error_reason(late.value) == "REFUND_WINDOW_CLOSED"
    finally:
        suite.clock.advance(-(suite.redemption.service.settings.refund_window_seconds + 1))
    with pytest.raises(grpc.aio.AioRpcError) as nul:
        await refund(suite, done.redemption_id, uid("r"), reason="sup\x00port")
    assert (nul.value.code(), error_reason(nul.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    with pytest.raises(grpc.aio.AioRpcError) as app_caller:
        await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
            request_id=uid("r"), redemption_id=done.redemption_id), metadata=md("app"))
    assert app_caller.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_raffle_draw_is_committed_reproducible_exactly_once_and_blocks_refunds(suite: Suite) -> None:
    raffle_id = uid("raffle")
    draw_at = suite.clock.now() + timedelta(hours=1)
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET, price=common_pb2.Price(currency=POINTS, amount=5),
                            raffle=catalog_pb2.RaffleAttributes(raffle_id=raffle_id, winners=2, draw_time=ts(draw_at)))
    users = [uid("u") for _ in range(4)]
    redemptions = []
    for user in users:
        await suite.fund(user, 100)
        redemptions.append(await suite.redeem(user, item.item_id, quantity=2))
    with pytest.raises(grpc.aio.AioRpcError) as unprepared:
        await suite.stub.DrawRaffle(rpb.DrawRaffleRequest(request_id=uid("d"), raffle_id=raffle_id),
                                    metadata=md("admin"))
    assert error_reason(unprepared.value) == "RAFFLE_NOT_PREPARED"
    prepared = (await suite.stub.PrepareRaffleDraw(rpb.PrepareRaffleDrawRequest(
        request_id="prep-" + raffle_id, raffle_id=raffle_id), metadata=md("admin"))).draw
    assert prepared.state == rpb.RAFFLE_DRAW_STATE_PREPARED and prepared.seed == "" and len(prepared.seed_hash) == 64
    again = (await suite.stub.PrepareRaffleDraw(rpb.PrepareRaffleDrawRequest(
        request_id="prep2-" + raffle_id, raffle_id=raffle_id), metadata=md("admin"))).draw
    assert again.seed_hash == prepared.seed_hash
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await suite.stub.DrawRaffle(rpb.DrawRaffleRequest(request_id=uid("d"), raffle_id=raffle_id),
                                    metadata=md("admin"))
    assert error_reason(early.value) == "DRAW_TIME_NOT_REACHED"

    suite.clock.advance(3601)
    try:
        drawn = (await suite.stub.DrawRaffle(rpb.DrawRaffleRequest(
            request_id="draw-" + raffle_id, raffle_id=raffle_id), metadata=md("admin"))).draw
        replay = (await suite.stub.DrawRaffle(rpb.DrawRaffleRequest(
            request_id="draw-" + raffle_id, raffle_id=raffle_id), metadata=md("admin"))).draw
        other_key = (await suite.stub.DrawRaffle(rpb.DrawRaffleRequest(
            request_id="draw2-" + raffle_id, raffle_id=raffle_id), metadata=md("admin"))).draw
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await refund(suite, redemptions[0].redemption_id, uid("r"))
    finally:
        suite.clock.advance(-3601)
    assert drawn.state == rpb.RAFFLE_DRAW_STATE_DRAWN and drawn.ticket_count == 8
    assert replay == drawn and list(other_key.winner_entitlement_ids) == list(drawn.winner_entitlement_ids)
    seed = bytes.fromhex(drawn.seed)
    assert hashlib.sha256(seed).hexdigest() == prepared.seed_hash
    tickets = [e.entitlement_id for u in users for e in await suite.entitlements(u)]
    assert list(drawn.winner_entitlement_ids) == draw_winners(seed, tickets, 2)
    assert set(drawn.winner_user_ids) <= set(users)
    assert error_reason(refused.value) == "ENTITLEMENT_CONSUMED"
    states = {e.state for u in users for e in await suite.entitlements(u)}
    assert states == {rpb.ENTITLEMENT_STATE_CONSUMED}
    got = (await suite.stub.GetRaffleDraw(rpb.GetRaffleDrawRequest(raffle_id=raffle_id), metadata=md("app"))).draw
    assert got == drawn


async def test_one_key_racing_for_two_raffles_answers_one_and_refuses_the_other(suite: Suite) -> None:
    """Two first PrepareRaffleDraw calls with one request id and different raffles: one gets its
    draw, the other IDEMPOTENCY_KEY_REUSED — never the other raffle's draw."""
    raffles = [uid("raffle"), uid("raffle")]
    for raffle_id in raffles:
        await suite.item(kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET, price=common_pb2.Price(currency=POINTS, amount=5),
                         raffle=catalog_pb2.RaffleAttributes(raffle_id=raffle_id, winners=1,
                                                             draw_time=ts(suite.clock.now() + timedelta(hours=1))))
    key = uid("prep")

    async def prepare(raffle_id: str) -> str:
        try:
            reply = await suite.stub.PrepareRaffleDraw(
                rpb.PrepareRaffleDrawRequest(request_id=key, raffle_id=raffle_id), metadata=md("admin"))
        except grpc.aio.AioRpcError as exc:
            return error_reason(exc)
        assert reply.draw.raffle_id == raffle_id
        return "OK"

    for _ in range(5):  # the race is not certain on each try; a wrong answer is checked on every one
        outcomes = await asyncio.gather(prepare(raffles[0]), prepare(raffles[1]))
        assert sorted(outcomes) == ["IDEMPOTENCY_KEY_REUSED", "OK"], outcomes
        key = uid("prep")


async def test_the_app_sees_and_redeems_only_for_the_user_it_acts_for(suite: Suite) -> None:
    """docs/architecture.md, Policy: GetRedemption names no user, so another user's redemption is NOT_FOUND for an app
    call acting for someone else (its existence is not revealed); lists name the user."""
    owner, other = uid("u"), uid("u")
    await suite.fund(owner, 100)
    done = await suite.redeem(owner, (await suite.item(**cosmetic_spec(price=10))).item_id)
    get = rpb.GetRedemptionRequest(redemption_id=done.redemption_id)
    mine = await suite.stub.GetRedemption(get, metadata=acting_for(md("app"), owner))
    assert mine.redemption.redemption_id == done.redemption_id
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await suite.stub.GetRedemption(get, metadata=acting_for(md("app"), other))
    assert (hidden.value.code(), error_reason(hidden.value)) == (grpc.StatusCode.NOT_FOUND, "REDEMPTION_NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await suite.stub.ListRedemptions(rpb.ListRedemptionsRequest(user_id=owner),
                                         metadata=acting_for(md("app"), other))
    assert error_reason(listing.value) == "USER_SCOPE_MISMATCH"
    assert (await suite.stub.GetRedemption(get, metadata=md("admin"))).redemption.user_id == owner
    with pytest.raises(grpc.aio.AioRpcError) as spend:
        await suite.stub.Redeem(rpb.RedeemRequest(request_id=uid("r"), user_id=owner, item_id=done.item_id, quantity=1,
                                                  region="US"), metadata=acting_for(md("app"), other))
    assert error_reason(spend.value) == "USER_SCOPE_MISMATCH"
    assert (await suite.balance(owner)).available == 90
