"""The saga rules without any I/O: step order, compensation order, point of no return, raffle draws."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from redemption.domain.item import ItemKind, ItemSnapshot
from redemption.domain.raffle import commitment_too_late, draw_winners, raffle_closed, seed_hash
from redemption.domain.saga import (
    COMPENSATION,
    FORWARD,
    REFUND,
    Mode,
    RuleViolationError,
    Saga,
    State,
    Step,
    after_failure,
    after_stock_lost,
    after_success,
    holds_with_reservation,
    refund_refusal,
    skipped_steps,
    start_refund,
    step_request_id,
)

ITEM = ItemSnapshot(kind=ItemKind.COSMETIC, currency="POINTS", cosmetic_id="frame")


def new_saga() -> Saga:
    return Saga("r1", "u1", "i1", 1, "US", "")


def run_forward_until(step: Step) -> Saga:
    saga = new_saga()
    changes: dict[Step, dict[str, object]] = {
        Step.QUOTE: {"item": ITEM},
        Step.RESERVE_STOCK: {"reservation_id": "res", "amount": 10},
        Step.HOLD_FUNDS: {"hold_id": "hold"},
    }
    while saga.step is not step:
        assert saga.step is not None
        saga = after_success(saga, saga.step, **changes.get(saga.step, {}))
    return saga


def test_forward_steps_run_in_order_and_complete() -> None:
    saga = new_saga()
    seen = []
    while saga.step is not None:
        seen.append(saga.step)
        saga = after_success(saga, saga.step)
    assert tuple(seen) == FORWARD
    assert saga.state is State.COMPLETED and saga.mode is Mode.DONE and saga.funds_committed


def test_a_saga_with_nothing_to_lock_never_touches_stock() -> None:
    """Unlimited stock and no per-user limit: QUOTE prices it, the stock steps are skipped forward and in a
    refund, and compensation has no reservation to release."""
    open_item = replace(ITEM, reserves_stock=False)
    saga, seen, skipped = new_saga(), list[Step](), list[Step]()
    while saga.step is not None:
        seen.append(saga.step)
        after = after_success(saga, saga.step, **({"item": open_item, "amount": 10} if saga.step is Step.QUOTE
                                                  else {"hold_id": "hold"} if saga.step is Step.HOLD_FUNDS else {}))
        skipped += skipped_steps(saga, after)
        saga = after
    assert seen == [Step.QUOTE, Step.HOLD_FUNDS, Step.GRANT_ENTITLEMENT, Step.COMMIT_FUNDS]
    assert skipped == [Step.RESERVE_STOCK, Step.COMMIT_STOCK] and saga.state is State.COMPLETED
    refunding = start_refund(saga)
    after_revoke = after_success(refunding, Step.REVOKE_ENTITLEMENT)
    refunded = after_success(after_revoke, Step.REFUND_FUNDS)
    assert refunded.state is State.REFUNDED and skipped_steps(after_revoke, refunded) == (Step.RETURN_STOCK,)
    held = after_success(after_success(new_saga(), Step.QUOTE, item=open_item, amount=10), Step.HOLD_FUNDS,
                         hold_id="hold")
    cancelled = after_failure(after_success(held, Step.GRANT_ENTITLEMENT), Step.COMMIT_FUNDS, "HOLD_EXPIRED")
    assert cancelled.step is Step.REVOKE_ENTITLEMENT
    # A saga reading its item as one that reserves (and every saga stored before the flag) keeps every step.
    assert skipped_steps(new_saga(), after_success(new_saga(), Step.QUOTE, item=ITEM)) == ()
    # A refusal is no skip: a saga cancelled at QUOTE lists nothing skipped.
    assert skipped_steps(new_saga(), after_failure(new_saga(), Step.QUOTE, "OUT_OF_STOCK")) == ()


def test_a_priced_saga_holds_in_the_reservations_round() -> None:
    priced = after_success(new_saga(), Step.QUOTE, item=ITEM, amount=10, currency="POINTS")
    assert priced.step is Step.RESERVE_STOCK and holds_with_reservation(priced)
    # Unpriced (stored before quotes priced sagas) or free: the hold follows the reservation, as before.
    assert not holds_with_reservation(after_success(new_saga(), Step.QUOTE, item=ITEM))
    assert not holds_with_reservation(replace(priced, amount=0))
    # A refused round with the hold taken compensates exactly the hold.
    refused = after_failure(replace(priced, hold_id="hold"), Step.RESERVE_STOCK, "OUT_OF_STOCK")
    assert refused.step is Step.RELEASE_FUNDS and not holds_with_reservation(refused)
    assert after_success(refused, Step.RELEASE_FUNDS).state is State.CANCELLED


def test_a_step_out_of_turn_is_refused() -> None:
    with pytest.raises(RuleViolationError):
        after_success(new_saga(), Step.HOLD_FUNDS)


def test_failure_at_quote_cancels_without_compensation() -> None:
    saga = after_failure(new_saga(), Step.QUOTE, "NOT_AVAILABLE_IN_REGION")
    assert saga.state is State.CANCELLED and saga.cancel_reason == "NOT_AVAILABLE_IN_REGION"
    assert saga.step is None


def test_failure_at_hold_releases_only_the_stock() -> None:
    saga = after_failure(run_forward_until(Step.HOLD_FUNDS), Step.HOLD_FUNDS, "INSUFFICIENT_FUNDS")
    assert saga.mode is Mode.COMPENSATING and saga.step is Step.RELEASE_STOCK
    saga = after_success(saga, Step.RELEASE_STOCK)
    assert saga.state is State.CANCELLED and saga.cancel_reason == "INSUFFICIENT_FUNDS"


def test_failure_at_commit_compensates_in_reverse_order() -> None:
    saga = after_failure(run_forward_until(Step.COMMIT_FUNDS), Step.COMMIT_FUNDS, "HOLD_EXPIRED")
    order = []
    while saga.step is not None:
        order.append(saga.step)
        saga = after_success(saga, saga.step)
    assert tuple(order) == COMPENSATION
    assert saga.state is State.CANCELLED and not saga.entitlements_granted


def test_after_funds_commit_the_saga_only_moves_forward() -> None:
    saga = after_success(run_forward_until(Step.COMMIT_FUNDS), Step.COMMIT_FUNDS)
    assert saga.step is Step.COMMIT_STOCK and saga.past_point_of_no_return
    retried = after_failure(saga, Step.COMMIT_STOCK, "RESERVATION_EXPIRED")
    assert retried.mode is Mode.FORWARD and retried.step is Step.COMMIT_STOCK
    assert retried.reservation_id == "" and retried.stock_attempt == 1
    assert step_request_id("r1", Step.RESERVE_STOCK, retried.stock_attempt) == "r1:reserve-1"


def test_stock_lost_after_the_funds_commit_refunds_all_but_coin_gifts() -> None:
    committed = after_success(run_forward_until(Step.COMMIT_FUNDS), Step.COMMIT_FUNDS)
    lost = replace(after_failure(committed, Step.COMMIT_STOCK, "RESERVATION_EXPIRED"), currency="POINTS")
    refunding = after_stock_lost(lost, "OUT_OF_STOCK")
    assert refunding.mode is Mode.REFUNDING and refunding.state is State.PENDING
    assert refunding.cancel_reason == "STOCK_LOST: OUT_OF_STOCK"
    order = []
    while refunding.step is not None:
        order.append(refunding.step)
        refunding = after_success(refunding, refunding.step)
    assert tuple(order) == REFUND and refunding.state is State.REFUNDED and not refunding.entitlements_granted

    coins = after_stock_lost(replace(lost, currency="COINS"), "OUT_OF_STOCK")
    assert coins.mode is Mode.REFUNDING  # the wallet refunds the committed coin hold
    gift = replace(lost, currency="COINS",
                   item=ItemSnapshot(kind=ItemKind.VIRTUAL_GIFT, currency="COINS", gift_id="rose"))
    assert after_stock_lost(gift, "OUT_OF_STOCK").state is State.COMPLETED  # the creator's diamonds are paid
    free = after_stock_lost(replace(lost, currency="COINS", amount=0), "OUT_OF_STOCK")
    assert free.mode is Mode.REFUNDING  # nothing to credit: the entitlement is revoked all the same
    with pytest.raises(RuleViolationError):
        after_stock_lost(run_forward_until(Step.COMMIT_FUNDS), "OUT_OF_STOCK")  # funds not committed yet


def test_compensation_steps_cannot_be_abandoned() -> None:
    saga = after_failure(run_forward_until(Step.COMMIT_FUNDS), Step.COMMIT_FUNDS, "HOLD_EXPIRED")
    with pytest.raises(RuleViolationError):
        after_failure(saga, saga.step or Step.QUOTE, "X")


def test_request_ids_derive_from_the_redemption_id() -> None:
    assert step_request_id("abc", Step.HOLD_FUNDS) == "abc:hold"
    assert step_request_id("abc", Step.COMMIT_FUNDS) == "abc:commit-funds"
    assert step_request_id("abc", Step.RELEASE_STOCK) == "abc:release-stock"


def test_refund_runs_revoke_then_funds_then_stock() -> None:
    saga = after_success(after_success(run_forward_until(Step.COMMIT_FUNDS), Step.COMMIT_FUNDS), Step.COMMIT_STOCK)
    saga = start_refund(saga)
    order = []
    while saga.step is not None:
        order.append(saga.step)
        saga = after_success(saga, saga.step)
    assert order == [Step.REVOKE_ENTITLEMENT, Step.REFUND_FUNDS, Step.RETURN_STOCK]
    assert saga.state is State.REFUNDED
    with pytest.raises(RuleViolationError):
        start_refund(saga)


def test_refund_rules() -> None:
    done = replace(new_saga(), state=State.COMPLETED, item=ITEM)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert refund_refusal(done, now - timedelta(hours=1), now, 86400, consumed=False) == ""
    assert refund_refusal(done, now - timedelta(days=2), now, 86400, consumed=False) == "REFUND_WINDOW_CLOSED"
    assert refund_refusal(done, now, now, 86400, consumed=True) == "ENTITLEMENT_CONSUMED"
    gift = replace(done, currency="COINS",
                   item=ItemSnapshot(kind=ItemKind.VIRTUAL_GIFT, currency="COINS", gift_id="rose"))
    assert refund_refusal(gift, now, now, 86400, consumed=False) == "COIN_GIFT_NOT_REFUNDABLE"
    assert refund_refusal(replace(done, currency="COINS"), now, now, 86400, consumed=False) == ""
    assert refund_refusal(new_saga(), None, now, 86400, consumed=False) == "NOT_COMPLETED"


def test_a_raffle_closes_at_its_close_instant_and_commits_no_later() -> None:
    close = datetime(2026, 1, 2, tzinfo=UTC)
    ticket = ItemSnapshot(kind=ItemKind.RAFFLE_TICKET, currency="POINTS", raffle_id="r", sales_close_time=close)
    assert not raffle_closed(ticket, close - timedelta(microseconds=1))
    assert raffle_closed(ticket, close)  # half-open: sales are over at the instant itself
    assert not raffle_closed(replace(ticket, sales_close_time=None), close)  # no close time: never closes
    assert not raffle_closed(ITEM, close) and not raffle_closed(None, close)
    assert not commitment_too_late(close, close)  # the commitment may be published at the close
    assert commitment_too_late(close, close + timedelta(microseconds=1))
    # Refunds: before the close anything goes; after it, a committed raffle's entries are frozen.
    done = replace(new_saga(), state=State.COMPLETED, item=ticket)
    before, after = close - timedelta(seconds=1), close + timedelta(seconds=1)
    assert refund_refusal(done, before, before, 86400, consumed=False, raffle_committed=True) == ""
    assert refund_refusal(done, before, after, 86400, consumed=False, raffle_committed=True) == "RAFFLE_CLOSED"
    assert refund_refusal(done, before, after, 86400, consumed=False, raffle_committed=False) == ""


def test_raffle_draw_is_reproducible_and_order_independent() -> None:
    seed = bytes(range(32))
    tickets = [f"t{i:03d}" for i in range(100)]
    first = draw_winners(seed, tickets, 3)
    assert first == draw_winners(seed, list(reversed(tickets)), 3)
    assert len(set(first)) == 3 and set(first) <= set(tickets)
    assert draw_winners(b"other" * 8, tickets, 3) != first
    assert draw_winners(seed, ["a", "b"], 5) in (["a", "b"], ["b", "a"])
    assert seed_hash(seed) == seed_hash(bytes(range(32))) and len(seed_hash(seed)) == 64
