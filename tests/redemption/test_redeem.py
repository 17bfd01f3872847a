"""Redeem against the real wallet and catalog: each item kind, each refusal, exact compensation."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from points.catalog.v1 import catalog_pb2
from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as rpb
from points_platform.client import error_reason
from tests.redemption.conftest import COINS, DIAMONDS, POINTS, Suite, cosmetic_spec, md, uid
from tests.support.wait import HANG_SECONDS, eventually

COMPLETED = rpb.REDEMPTION_STATE_COMPLETED
CANCELLED = rpb.REDEMPTION_STATE_CANCELLED


def step_names(redemption: rpb.Redemption) -> list[str]:
    return [
        f"{rpb.SagaStepName.Name(s.name).removeprefix('SAGA_STEP_NAME_')}:"
        f"{rpb.StepOutcome.Name(s.outcome).removeprefix('STEP_OUTCOME_')}"
        for s in redemption.steps
    ]


async def test_cosmetic_happy_path_spends_points_and_grants_ownership(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 500)
    item = await suite.item(**cosmetic_spec(price=120, limited_stock=True, stock_total=5))
    redemption = await suite.redeem(user, item.item_id)
    assert redemption.state == COMPLETED, redemption
    assert redemption.price.amount == 120 and redemption.price.currency == POINTS
    assert [s for s in step_names(redemption) if s.endswith("SUCCEEDED")] == [
        "QUOTE:SUCCEEDED", "RESERVE_STOCK:SUCCEEDED", "HOLD_FUNDS:SUCCEEDED", "GRANT_ENTITLEMENT:SUCCEEDED",
        "COMMIT_FUNDS:SUCCEEDED", "COMMIT_STOCK:SUCCEEDED"]
    assert all(s.time.seconds > 0 for s in redemption.steps)
    balance = await suite.balance(user)
    assert (balance.available, balance.held) == (380, 0)
    after = await suite.get_item(item.item_id)
    assert (after.stock_sold, after.stock_reserved, after.stock_available) == (1, 0, 4)
    [owned] = await suite.entitlements(user)
    assert owned.kind == rpb.ENTITLEMENT_KIND_COSMETIC and owned.cosmetic_id == "gold-frame"
    assert owned.state == rpb.ENTITLEMENT_STATE_ACTIVE and list(redemption.entitlement_ids) == [owned.entitlement_id]


async def test_same_request_id_returns_the_same_redemption_and_different_body_is_refused(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 500)
    item = await suite.item(**cosmetic_spec(price=100))
    first = await suite.redeem(user, item.item_id, request_id="same-key-" + user)
    again = await suite.redeem(user, item.item_id, request_id="same-key-" + user)
    assert again.redemption_id == first.redemption_id and again.state == COMPLETED
    assert (await suite.balance(user)).available == 400
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await suite.redeem(user, item.item_id, quantity=2, request_id="same-key-" + user)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(caught.value) == "IDEMPOTENCY_KEY_REUSED"


async def test_raffle_tickets_one_per_unit(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 1000)
    raffle_id = uid("raffle")
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET,
                            price=common_pb2.Price(currency=POINTS, amount=50),
                            raffle=catalog_pb2.RaffleAttributes(raffle_id=raffle_id, winners=1,
                                                                draw_time=_future(suite)))
    redemption = await suite.redeem(user, item.item_id, quantity=3)
    assert redemption.state == COMPLETED and redemption.price.amount == 150
    tickets = await suite.entitlements(user)
    assert len(tickets) == 3 and {t.raffle_id for t in tickets} == {raffle_id}
    assert {t.kind for t in tickets} == {rpb.ENTITLEMENT_KIND_RAFFLE_TICKET}


async def test_discount_codes_are_unique_and_unguessable(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 1000)
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_PREMIUM_DISCOUNT,
                            price=common_pb2.Price(currency=POINTS, amount=10),
                            discount=catalog_pb2.DiscountAttributes(percent_off_bps=2000, target_feature="ad_free"))
    await suite.redeem(user, item.item_id, quantity=2)
    await suite.redeem(user, item.item_id, quantity=1)
    codes = [e.discount_code for e in await suite.entitlements(user)]
    assert len(codes) == 3 and len(set(codes)) == 3 and all(len(c) >= 20 for c in codes)


async def test_event_pass(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 100)
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_EVENT_ACCESS, price=common_pb2.Price(currency=POINTS, amount=30),
                            event_access=catalog_pb2.EventAccessAttributes(event_id="concert-1"))
    assert (await suite.redeem(user, item.item_id)).state == COMPLETED
    [ticket] = await suite.entitlements(user)
    assert ticket.kind == rpb.ENTITLEMENT_KIND_EVENT_PASS and ticket.event_id == "concert-1"


async def test_points_gift_gives_the_creator_a_record_and_no_diamonds(suite: Suite) -> None:
    user, creator = uid("u"), uid("creator")
    await suite.fund(user, 100)
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_VIRTUAL_GIFT, price=common_pb2.Price(currency=POINTS, amount=40),
                            gift=catalog_pb2.GiftAttributes(gift_id="rose"))
    redemption = await suite.redeem(user, item.item_id, recipient_id=creator)
    assert redemption.state == COMPLETED
    [gift] = await suite.entitlements(user)
    assert gift.kind == rpb.ENTITLEMENT_KIND_GIFT_RECORD and gift.recipient_id == creator and gift.gift_id == "rose"
    assert (await suite.balance(creator, DIAMONDS)).available == 0
    assert (await suite.balance(user)).available == 60


async def test_coin_gift_goes_through_send_gift_and_pays_diamonds(suite: Suite) -> None:
    user, creator = uid("u"), uid("creator")
    await suite.fund(user, 1000, COINS)
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_VIRTUAL_GIFT, price=common_pb2.Price(currency=COINS, amount=100),
                            gift=catalog_pb2.GiftAttributes(gift_id="lion"))
    redemption = await suite.redeem(user, item.item_id, quantity=2, recipient_id=creator)
    assert redemption.state == COMPLETED, step_names(redemption)
    assert "COMMIT_FUNDS:SUCCEEDED" in step_names(redemption)
    coins = await suite.balance(user, COINS)
    assert (coins.available, coins.held) == (800, 0)
    assert (await suite.balance(creator, DIAMONDS)).available == 100  # floor(200 coins * 5000 bps)
    assert len(await suite.entitlements(user)) == 2


@pytest.mark.parametrize("recipient", ["", "self"])
async def test_gift_recipient_rules(suite: Suite, recipient: str) -> None:
    user = uid("u")
    await suite.fund(user, 100)
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_VIRTUAL_GIFT, price=common_pb2.Price(currency=POINTS, amount=1),
                            gift=catalog_pb2.GiftAttributes(gift_id="rose"))
    redemption = await suite.redeem(user, item.item_id, recipient_id=user if recipient == "self" else "")
    assert redemption.state == CANCELLED
    assert redemption.cancel_reason == ("SELF_GIFT_NOT_ALLOWED" if recipient else "RECIPIENT_REQUIRED")


async def test_insufficient_funds_never_takes_the_stock(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 50)
    item = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=3))
    redemption = await suite.redeem(user, item.item_id)
    assert redemption.state == CANCELLED and redemption.cancel_reason == "INSUFFICIENT_FUNDS"
    # Refused at the quote (funds checked before a scarce unit is reserved).
    assert step_names(redemption) == ["QUOTE:STARTED", "QUOTE:FAILED"]
    after = await suite.get_item(item.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (3, 0, 0)
    balance = await suite.balance(user)
    assert (balance.available, balance.held) == (50, 0)
    assert await suite.entitlements(user) == []


async def test_out_of_stock(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 500)
    item = await suite.item(**cosmetic_spec(price=10, limited_stock=True, stock_total=1))
    assert (await suite.redeem(user, item.item_id)).state == COMPLETED
    second = await suite.redeem(user, item.item_id)
    assert second.state == CANCELLED and second.cancel_reason == "OUT_OF_STOCK"
    assert (await suite.balance(user)).available == 490


async def test_per_user_limit(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 500)
    item = await suite.item(**cosmetic_spec(price=10, per_user_limit=1))
    assert (await suite.redeem(user, item.item_id)).state == COMPLETED
    second = await suite.redeem(user, item.item_id)
    assert second.state == CANCELLED and second.cancel_reason == "PER_USER_LIMIT_REACHED"


async def test_not_available_in_region(suite: Suite) -> None:
    user = uid("u")
    await suite.fund(user, 500)
    item = await suite.item(**cosmetic_spec(price=10, regions=["DE"]))
    cancelled = await suite.redeem(user, item.item_id, region="US")
    assert cancelled.state == CANCELLED and cancelled.cancel_reason == "NOT_AVAILABLE_IN_REGION"
    assert (await suite.redeem(user, item.item_id, region="DE")).state == COMPLETED


async def test_unknown_item(suite: Suite) -> None:
    redemption = await suite.redeem(uid("u"), "no-such-item")
    assert redemption.state == CANCELLED and redemption.cancel_reason.endswith("NOT_FOUND")


async def test_expired_hold_is_noticed_and_compensated(suite: Suite) -> None:
    """The saga stalls after the hold (catalog commit never reached); the hold expires; the saga cancels."""
    user = uid("u")
    await suite.fund(user, 300)
    item = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=2))
    service = suite.redemption.service
    runner = service.runner
    original = runner._commit_funds
    stalled: list[str] = []

    async def stall(saga):  # type: ignore[no-untyped-def]
        stalled.append(saga.redemption_id)
        return False  # as if the lease was lost right before the commit

    runner._commit_funds = stall  # type: ignore[method-assign]
    try:
        pending = await suite.redeem(user, item.item_id)
    finally:
        runner._commit_funds = original  # type: ignore[method-assign]
    assert pending.state == rpb.REDEMPTION_STATE_PENDING and stalled
    assert (await suite.balance(user)).held == 100
    suite.clock.advance(service.settings.hold_ttl_seconds + service.settings.lease_seconds + 1)
    assert await service.recover_once() == 1
    done = await _get(suite, pending.redemption_id)
    assert done.state == CANCELLED and done.cancel_reason == "HOLD_EXPIRED", step_names(done)
    balance = await suite.balance(user)
    assert (balance.available, balance.held) == (300, 0)
    after = await suite.get_item(item.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (2, 0, 0)
    assert [e.state for e in await suite.entitlements(user)] == [rpb.ENTITLEMENT_STATE_REVOKED]


async def _get(suite: Suite, redemption_id: str) -> rpb.Redemption:
    reply = await suite.stub.GetRedemption(rpb.GetRedemptionRequest(redemption_id=redemption_id), metadata=md("admin"))
    return reply.redemption


def _future(suite: Suite, seconds: int = 3600):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from tests.support.rpc import ts

    return ts(suite.clock.now() + timedelta(seconds=seconds))


async def test_an_item_with_nothing_to_lock_skips_the_stock_steps_and_the_hold_decides(suite: Suite) -> None:
    item = await suite.item(**cosmetic_spec(price=100))  # unlimited stock, no per-user limit
    rich, poor = uid("u"), uid("u")
    await suite.fund(rich, 150)
    await suite.fund(poor, 50)
    done = await suite.redeem(rich, item.item_id)
    assert done.state == COMPLETED, done
    # Priced by one Quote and created at HOLD_FUNDS; no reservation, the stock steps logged SKIPPED.
    assert step_names(done) == [
        "QUOTE:STARTED", "QUOTE:SUCCEEDED", "RESERVE_STOCK:SKIPPED",
        "HOLD_FUNDS:STARTED", "HOLD_FUNDS:SUCCEEDED", "GRANT_ENTITLEMENT:STARTED", "GRANT_ENTITLEMENT:SUCCEEDED",
        "COMMIT_FUNDS:STARTED", "COMMIT_FUNDS:SUCCEEDED", "COMMIT_STOCK:SKIPPED"]
    assert "priced by Quote" in done.steps[1].detail and done.reservation_id == ""
    assert len(done.entitlement_ids) == 1 and done.price.amount == 100
    assert (await suite.balance(rich)).available == 50
    # No funds pre-check without a scarce unit: the hold refuses and nothing is left to compensate.
    short = await suite.redeem(poor, item.item_id)
    assert short.state == CANCELLED and short.cancel_reason == "INSUFFICIENT_FUNDS"
    assert step_names(short)[-2:] == ["HOLD_FUNDS:STARTED", "HOLD_FUNDS:FAILED"]
    assert (await suite.balance(poor)).available == 50 and not await suite.entitlements(poor)


async def test_an_unlimited_item_with_a_per_user_limit_reserves_and_holds_in_one_round(suite: Suite) -> None:
    item = await suite.item(**cosmetic_spec(price=10, per_user_limit=1))
    user = uid("u")
    await suite.fund(user, 100)
    done = await suite.redeem(user, item.item_id)
    assert done.state == COMPLETED and done.reservation_id
    # Priced by the Quote before the saga was created, so the hold runs with the reservation: both STARTED
    # rows are written with the saga, both outcomes in one write.
    assert step_names(done) == [
        "QUOTE:STARTED", "QUOTE:SUCCEEDED", "HOLD_FUNDS:STARTED", "RESERVE_STOCK:STARTED",
        "RESERVE_STOCK:SUCCEEDED", "HOLD_FUNDS:SUCCEEDED", "GRANT_ENTITLEMENT:STARTED", "GRANT_ENTITLEMENT:SUCCEEDED",
        "COMMIT_FUNDS:STARTED", "COMMIT_FUNDS:SUCCEEDED", "COMMIT_STOCK:STARTED", "COMMIT_STOCK:SUCCEEDED"]
    assert done.steps[1].detail == "priced 10 POINTS" and (await suite.balance(user)).available == 90


async def test_the_reservation_and_the_hold_run_at_once(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call waits at a barrier for the other to start: run one after the other, they would hang."""
    item = await suite.item(**cosmetic_spec(price=40, limited_stock=True, stock_total=2))
    user = uid("u")
    await suite.fund(user, 100)
    runner = suite.redemption.service.runner
    both = asyncio.Barrier(2)
    reserve, hold = runner.catalog.reserve, runner.wallet.reserve

    async def reserve_at_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.wait_for(both.wait(), HANG_SECONDS)
        return await reserve(*args, **kwargs)

    async def hold_at_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.wait_for(both.wait(), HANG_SECONDS)
        return await hold(*args, **kwargs)

    monkeypatch.setattr(runner.catalog, "reserve", reserve_at_once)
    monkeypatch.setattr(runner.wallet, "reserve", hold_at_once)
    done = await suite.redeem(user, item.item_id)
    assert done.state == COMPLETED, done
    assert (await suite.balance(user)).available == 60
    after = await suite.get_item(item.item_id)
    assert (after.stock_sold, after.stock_reserved, after.stock_available) == (1, 0, 1)


async def test_a_refused_reservation_releases_the_hold_taken_with_it(suite: Suite,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The quote saw the last unit, then someone else reserved it: the round's reservation is refused while
    its hold succeeds, and compensation releases exactly that hold."""
    item = await suite.item(**cosmetic_spec(price=40, limited_stock=True, stock_total=1))
    user = uid("u")
    await suite.fund(user, 100)
    runner = suite.redemption.service.runner
    reserve = runner.catalog.reserve

    async def last_unit_taken_first(request_id, item_id, user_id, quantity, region, ttl):  # type: ignore[no-untyped-def]
        await reserve(f"{request_id}-other", item_id, uid("other"), quantity, region, ttl)  # a real reservation
        return await reserve(request_id, item_id, user_id, quantity, region, ttl)

    monkeypatch.setattr(runner.catalog, "reserve", last_unit_taken_first)
    cancelled = await suite.redeem(user, item.item_id)
    assert cancelled.state == CANCELLED and cancelled.cancel_reason == "OUT_OF_STOCK", cancelled
    assert cancelled.reservation_id == ""
    names = step_names(cancelled)
    assert {"RESERVE_STOCK:FAILED", "HOLD_FUNDS:SUCCEEDED"} <= set(names) and names[-1] == "RELEASE_FUNDS:SUCCEEDED"
    balance = await suite.balance(user)
    assert (balance.available, balance.held) == (100, 0) and not await suite.entitlements(user)


async def test_a_round_cut_short_by_a_crash_is_replayed_with_the_same_effects(suite: Suite) -> None:
    """The reservation and the hold took effect, then the process died before the round's write: recovery
    runs the round again under the same request ids and gets the same reservation and hold back (no second
    unit reserved, no second hold), then completes."""
    item = await suite.item(**cosmetic_spec(price=40, limited_stock=True, stock_total=2))
    user = uid("u")
    await suite.fund(user, 100)
    service = suite.redemption.service
    runner = service.runner
    original = runner._reserve_and_hold

    async def crash_after_the_calls(saga):  # type: ignore[no-untyped-def]
        await asyncio.gather(runner._reserve(saga), runner._hold(saga))
        return None  # the process dies before the round's outcome is written

    runner._reserve_and_hold = crash_after_the_calls  # type: ignore[method-assign]
    try:
        pending = await suite.redeem(user, item.item_id)
    finally:
        runner._reserve_and_hold = original  # type: ignore[method-assign]
    assert pending.state == rpb.REDEMPTION_STATE_PENDING and pending.reservation_id == ""
    assert (await suite.balance(user)).held == 40
    suite.clock.advance(service.settings.lease_seconds + 1)
    done = await _recover(suite, pending.redemption_id)
    assert done.state == COMPLETED, done
    balance = await suite.balance(user)
    assert (balance.available, balance.held) == (60, 0)
    after = await suite.get_item(item.item_id)
    assert (after.stock_sold, after.stock_reserved, after.stock_available) == (1, 0, 1)


async def _crash_after_funds_commit(suite: Suite, user: str, item_id: str) -> rpb.Redemption:
    """Redeem, but the process dies right after CommitHold took effect (the transition unwritten);
    then the outage outlives the reservation, which the catalog's sweeper expires."""
    from redemption.domain.saga import Step, step_request_id

    service = suite.redemption.service
    runner = service.runner
    original = runner._commit_funds

    async def crash_after_commit(saga):  # type: ignore[no-untyped-def]
        await runner.wallet.commit(step_request_id(saga.redemption_id, Step.COMMIT_FUNDS), saga.hold_id, "redemption")
        return None  # the process dies before the transition is written

    runner._commit_funds = crash_after_commit  # type: ignore[method-assign]
    try:
        pending = await suite.redeem(user, item_id)
    finally:
        runner._commit_funds = original  # type: ignore[method-assign]
    assert pending.state == rpb.REDEMPTION_STATE_PENDING
    suite.clock.advance(service.settings.reservation_ttl_seconds + service.settings.lease_seconds + 1)
    # One sweep at the moved clock; the background sweeper may hold the row (skipped), so wait for the row.
    await suite.expire_reservations()

    async def expired() -> bool:
        reservation = (await suite.catalog_stub.GetReservation(
            catalog_pb2.GetReservationRequest(reservation_id=pending.reservation_id), metadata=md("admin"))).reservation
        return reservation.state == catalog_pb2.RESERVATION_STATE_EXPIRED

    await eventually(expired, what="the catalog's sweeper marks the reservation EXPIRED")
    return pending


async def _recover(suite: Suite, redemption_id: str) -> rpb.Redemption:
    """The recovery loop picks the saga up and drives it to its end (one pass: it awaits the driver)."""
    service = suite.redemption.service
    assert await service.recover_once() == 1
    await asyncio.wait_for(service.drivers_stopped(), HANG_SECONDS)
    return await _get(suite, redemption_id)


async def test_funds_committed_before_a_crash_are_not_cancelled_by_the_reservation_recheck(suite: Suite) -> None:
    """CommitHold took effect but the process died before recording it; the outage outlives the
    reservation. The retried COMMIT_FUNDS must not cancel (the points are spent): it completes."""
    user = uid("u")
    await suite.fund(user, 300)
    item = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=2))
    pending = await _crash_after_funds_commit(suite, user, item.item_id)
    assert (await suite.balance(user)).available == 200
    done = await _recover(suite, pending.redemption_id)
    assert done.state == COMPLETED, (done.cancel_reason, step_names(done))
    assert (await suite.balance(user)).available == 200
    assert [e.state for e in await suite.entitlements(user)] == [rpb.ENTITLEMENT_STATE_ACTIVE]
    after = await suite.get_item(item.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (1, 0, 1)


async def test_stock_gone_after_the_funds_commit_is_refunded_never_oversold(suite: Suite) -> None:
    """As above, but while the saga was down someone else bought the last unit: re-reserving fails
    (OUT_OF_STOCK). The saga cannot deliver, so it refunds: entitlement revoked, points credited
    back, REFUNDED — the item's one unit has one owner."""
    user, rival = uid("u"), uid("rival")
    await suite.fund(user, 300)
    await suite.fund(rival, 300)
    item = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=1))
    pending = await _crash_after_funds_commit(suite, user, item.item_id)
    assert (await suite.balance(user)).available == 200
    assert (await suite.redeem(rival, item.item_id)).state == COMPLETED  # the expired unit was free again

    done = await _recover(suite, pending.redemption_id)
    assert done.state == rpb.REDEMPTION_STATE_REFUNDED, (done.cancel_reason, step_names(done))
    assert done.cancel_reason == "STOCK_LOST: OUT_OF_STOCK"
    assert [s for s in step_names(done) if not s.endswith(":STARTED")][-4:] == [
        "COMMIT_STOCK:FAILED", "REVOKE_ENTITLEMENT:SUCCEEDED", "REFUND_FUNDS:SUCCEEDED", "RETURN_STOCK:SKIPPED"
    ], step_names(done)
    assert (await suite.balance(user)).available == 300
    assert [e.state for e in await suite.entitlements(user)] == [rpb.ENTITLEMENT_STATE_REVOKED]
    assert [e.state for e in await suite.entitlements(rival)] == [rpb.ENTITLEMENT_STATE_ACTIVE]
    after = await suite.get_item(item.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (0, 0, 1)


async def test_coin_priced_stock_gone_after_the_funds_commit_is_refunded_in_coins(suite: Suite) -> None:
    """The coin-priced variant: the wallet gives back the committed coin hold (RefundHold)."""
    user, rival = uid("u"), uid("rival")
    await suite.fund(user, 300, COINS)
    await suite.fund(rival, 300, COINS)
    item = await suite.item(**cosmetic_spec(price=100, currency=COINS, limited_stock=True, stock_total=1))
    pending = await _crash_after_funds_commit(suite, user, item.item_id)
    assert (await suite.balance(user, COINS)).available == 200
    assert (await suite.redeem(rival, item.item_id)).state == COMPLETED

    done = await _recover(suite, pending.redemption_id)
    assert done.state == rpb.REDEMPTION_STATE_REFUNDED, (done.cancel_reason, step_names(done))
    assert done.cancel_reason == "STOCK_LOST: OUT_OF_STOCK"
    assert (await suite.balance(user, COINS)).available == 300
    assert (await suite.balance(rival, COINS)).available == 200
    after = await suite.get_item(item.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (0, 0, 1)


@pytest.mark.parametrize("currency", [POINTS, COINS])
async def test_a_hold_committed_by_a_stale_driver_during_compensation_is_credited_back(
        suite: Suite, currency: common_pb2.Currency.ValueType) -> None:
    """A driver that outlived its lease commits the hold while the saga compensates: the saga
    still ends CANCELLED, and the user gets the spent funds back (never CANCELLED-and-charged);
    points by a refund credit, coins by the wallet refunding the committed hold."""
    from redemption.domain.saga import Step, step_request_id

    user = uid("u")
    await suite.fund(user, 300, currency)
    item = await suite.item(**cosmetic_spec(price=100, currency=currency, limited_stock=True, stock_total=2))
    runner = suite.redemption.service.runner
    original = runner._commit_funds

    async def stale_commit_then_refusal(saga):  # type: ignore[no-untyped-def]
        await runner.wallet.commit(step_request_id(saga.redemption_id, Step.COMMIT_FUNDS), saga.hold_id, "redemption")
        return await runner._fail(saga, Step.COMMIT_FUNDS, "HOLD_EXPIRED")

    runner._commit_funds = stale_commit_then_refusal  # type: ignore[method-assign]
    try:
        done = await suite.redeem(user, item.item_id)
    finally:
        runner._commit_funds = original  # type: ignore[method-assign]
    assert done.state == CANCELLED, step_names(done)
    assert "RELEASE_FUNDS:SUCCEEDED" in step_names(done)
    balance = await suite.balance(user, currency)
    assert (balance.available, balance.held) == (300, 0)
    assert [e for e in await suite.entitlements(user) if e.state == rpb.ENTITLEMENT_STATE_ACTIVE] == []
    after = await suite.get_item(item.item_id)
    assert (after.stock_available, after.stock_reserved, after.stock_sold) == (2, 0, 0)


async def test_redeem_answers_from_what_its_driver_wrote_exactly_as_stored(
        suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saga this Redeem created and drove to the end is answered from its journal, with no read back;
    the answer must be exactly what GetRedemption reads from the database."""
    sagas = suite.redemption.service.sagas
    reads: list[str] = []
    real_get = sagas.get

    async def counting_get(redemption_id: str, *, with_steps: bool = False):  # type: ignore[no-untyped-def]
        reads.append(redemption_id)
        return await real_get(redemption_id, with_steps=with_steps)

    monkeypatch.setattr(sagas, "get", counting_get)
    rich, poor = uid("u"), uid("u")
    await suite.fund(rich, 1000)
    await suite.fund(poor, 10)
    raffle = await suite.item(kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET,
                              price=common_pb2.Price(currency=POINTS, amount=50),
                              raffle=catalog_pb2.RaffleAttributes(raffle_id=uid("raffle"), winners=1,
                                                                  draw_time=_future(suite)))
    unlimited = await suite.item(**cosmetic_spec(price=100))
    limited = await suite.item(**cosmetic_spec(price=100, limited_stock=True, stock_total=5))
    answers = [
        await suite.redeem(rich, raffle.item_id, quantity=3),  # COMPLETED, three entitlements
        await suite.redeem(poor, unlimited.item_id),  # refused at the hold, stock released
        await suite.redeem(poor, limited.item_id),  # refused at the quote
        await suite.redeem(rich, limited.item_id),  # COMPLETED through the quote
    ]
    assert [a.state for a in answers] == [COMPLETED, CANCELLED, CANCELLED, COMPLETED]
    assert len(answers[0].entitlement_ids) == 3
    assert reads == []
    for answer in answers:
        stored = await suite.stub.GetRedemption(rpb.GetRedemptionRequest(redemption_id=answer.redemption_id),
                                                metadata=md("admin"))
        assert stored.redemption == answer


async def test_item_facts_are_read_again_once_the_service_clock_passes_their_ttl(suite: Suite) -> None:
    from redemption.use_cases.saga_runner import ITEM_FACTS_TTL

    item = await suite.item(**cosmetic_spec(price=100))
    runner = suite.redemption.service.runner
    first = await runner.item_facts(item.item_id)
    spec = catalog_pb2.ItemSpec(title="renamed", **cosmetic_spec(price=100))  # type: ignore[arg-type]
    await suite.catalog_stub.UpdateItem(catalog_pb2.UpdateItemRequest(
        request_id=uid("update"), item_id=item.item_id, spec=spec), metadata=md("admin"))
    assert (await runner.item_facts(item.item_id)).version == first.version  # cached: the clock has not moved
    suite.clock.advance(ITEM_FACTS_TTL.total_seconds())
    assert (await runner.item_facts(item.item_id)).version > first.version
