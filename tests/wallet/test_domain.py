"""The pure rules, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from points_platform.errors import DomainError
from wallet import domain, replies
from wallet.domain import (
    MAX_ID_LENGTH,
    Currency,
    HoldFacts,
    HoldState,
    Kind,
    LedgerOp,
    Leg,
    filed_under,
    id_owner,
    owned_id,
)
from wallet.use_cases.results import BalanceView, HoldResult, HoldView, LedgerResult, PostingView, TransactionView

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def debit(rid: str, user: str, amount: int) -> LedgerOp:
    return LedgerOp("debit", rid, rid, Kind.DEBIT, user, (
        Leg(user, f"user:{user}", Currency.POINTS, -amount), Leg("", domain.POINTS_REDEMPTION, Currency.POINTS, amount)
    ))


def test_plan_fails_only_the_overdrawing_op() -> None:
    ops = [debit("1", "u", 6), debit("2", "u", 6), debit("3", "u", 4)]
    planned, deltas = domain.plan_ledger_ops(ops, {("u", Currency.POINTS): (10, 3)})
    assert [p.error.reason if p.error else "ok" for p in planned] == ["ok", "INSUFFICIENT_FUNDS", "ok"]
    assert [p.balances_after for p in planned] == [[("u", Currency.POINTS, 4, 3)], [], [("u", Currency.POINTS, 0, 3)]]
    assert deltas == {("u", Currency.POINTS): -10}


def test_unbalanced_op_is_refused() -> None:
    with pytest.raises(ValueError):
        LedgerOp("credit", "x", "f", Kind.CREDIT, "u", (Leg("u", "user:u", Currency.POINTS, 5),))


def test_gift_and_payout_round_down() -> None:
    assert domain.gift_diamonds(101, 5000) == 50
    assert domain.gift_diamonds(3, 3333) == 0
    assert domain.payout_cash_minor(1999, 500) == 999


@pytest.mark.parametrize(
    ("state", "expire", "amount", "outcome"),
    [
        (HoldState.ACTIVE, NOW + timedelta(seconds=1), 0, 10),
        (HoldState.ACTIVE, NOW + timedelta(seconds=1), 4, 4),
        (HoldState.ACTIVE, NOW, 4, "HOLD_EXPIRED"),
        (HoldState.ACTIVE, None, 11, "AMOUNT_EXCEEDS_HOLD"),
        (HoldState.COMMITTED, None, 0, "HOLD_ALREADY_COMMITTED"),
        (HoldState.RELEASED, None, 0, "HOLD_ALREADY_RELEASED"),
        (HoldState.EXPIRED, None, 0, "HOLD_EXPIRED"),
    ],
)
def test_commit_decisions(state: HoldState, expire: datetime | None, amount: int, outcome: object) -> None:
    try:
        got: object = domain.check_commit(HoldFacts(state, 10, expire), amount, NOW)
    except DomainError as exc:
        got = exc.reason
    assert got == outcome


def payment(rid: str, user: str, reference: str, amount: int = 5) -> LedgerOp:
    return LedgerOp("credit", rid, rid, Kind.CREDIT, user, (
        Leg("", domain.COIN_SALES, Currency.COINS, -amount), Leg(user, f"user:{user}", Currency.COINS, amount)
    ), reference=reference, payment_key=domain.payment_key(Currency.COINS, user, reference))


def test_plan_refuses_a_payment_credited_before_or_earlier_in_the_batch() -> None:
    ops = [payment("1", "u", "p-old"), payment("2", "u", "p-new"), payment("3", "u", "p-new"),
           payment("4", "v", "p-new")]
    paid = {("u", Currency.COINS, "p-old"): domain.PaidCredit("t-old", "r-old")}
    planned, deltas = domain.plan_ledger_ops(ops, {}, paid=paid, transaction_ids=["t1", "t2", "t3", "t4"])
    assert [p.error.reason if p.error else "ok" for p in planned] == [
        "PAYMENT_ALREADY_CREDITED", "ok", "PAYMENT_ALREADY_CREDITED", "ok"]
    assert [p.error.metadata["transaction_id"] for p in planned if p.error] == ["t-old", "t2"]
    assert deltas == {("u", Currency.COINS): 5, ("v", Currency.COINS): 5}
    # A payment that fails for another reason does not take its reference: the next one may apply.
    capped = domain.plan_ledger_ops([payment("5", "w", "p", domain.MAX_BALANCE), payment("6", "w", "p")],
                                    {("w", Currency.COINS): (1, 0)}, transaction_ids=["t5", "t6"])[0]
    assert [p.error.reason if p.error else "ok" for p in capped] == ["BALANCE_LIMIT_EXCEEDED", "ok"]
    assert domain.payment_key(Currency.POINTS, "u", "ev") is None


def test_credit_rights() -> None:
    domain.check_credit("earning", Currency.POINTS, "")
    domain.check_credit("payments", Currency.COINS, "pay-1")
    domain.check_credit("redemption", Currency.POINTS, "redemption-1")
    for caller, reason in (("redemption", "REFERENCE_REQUIRED"), ("admin", "ADJUSTMENT_REFERENCE_REQUIRED")):
        with pytest.raises(DomainError) as missing:
            domain.check_credit(caller, Currency.POINTS, "")
        assert missing.value.reason == reason
    for caller, currency in (("earning", Currency.COINS), ("admin", Currency.DIAMONDS), ("payments", Currency.POINTS)):
        with pytest.raises(DomainError) as caught:
            domain.check_credit(caller, currency, "r")
        assert caught.value.reason == "CURRENCY_NOT_ALLOWED"


def test_stored_result_round_trips() -> None:
    """A stored reply (the RPC's reply message, `wallet.replies`) decodes into the result it encoded."""
    txn = TransactionView("t", "r", Kind.GIFT, (
        PostingView("user:a", "a", Currency.COINS, -3), PostingView("system:gift_conversion", "", Currency.COINS, 3),
        PostingView("system:gift_conversion", "", Currency.DIAMONDS, -1),
        PostingView("user:b", "b", Currency.DIAMONDS, 1),
    ), NOW, "gift", "rose")
    gift = LedgerResult(txn, (BalanceView("a", Currency.COINS, 7, 0), BalanceView("b", Currency.DIAMONDS, 1, 0)), 5000)
    assert replies.ledger_result(replies.gift_reply(gift)) == gift
    credit = LedgerResult(replace(txn, kind=Kind.CREDIT, postings=txn.postings[:2]), gift.balances[:1])
    assert replies.ledger_result(replies.credit_reply(credit)) == credit


def test_expiry_takes_at_most_the_available_part_oldest_first() -> None:
    lots = [
        domain.ExpiringLot(1, "u", 30, "t1"),
        domain.ExpiringLot(2, "u", 50, "t2"),
        domain.ExpiringLot(3, "v", 10, "t3"),
        domain.ExpiringLot(4, "w", 5, "t4"),
    ]
    planned = domain.plan_expiry({"u": 60, "v": 10, "w": 0}, lots)
    assert [(e.lot.lot_id, e.amount, e.available_after) for e in planned] == [(1, 30, 30), (2, 30, 0), (3, 10, 0)]


def test_reason_class_is_bounded() -> None:
    assert domain.reason_class(Kind.CREDIT, "earning") == "earning"
    assert domain.reason_class(Kind.CREDIT, "redemption") == "refund"
    assert domain.reason_class(Kind.DEBIT, "admin") == "adjustment"
    assert domain.reason_class(Kind.DEBIT, "someone") == "other"
    assert domain.reason_class(Kind.EXPIRY, "") == "expiry"


@pytest.mark.parametrize("with_transaction", [False, True])
def test_hold_reply_is_the_stored_answer(with_transaction: bool) -> None:
    """A hold reply round trips through its proto bytes (also text that looks like JSON in user fields)."""
    now = datetime(2025, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    hold = HoldView('hold_1', 'u"\\x', Currency.POINTS, 10, 4, HoldState.COMMITTED, '"balance":{}', now, now, now)
    legs = (
        PostingView('user:u"\\x', 'u"\\x', Currency.POINTS, -4),
        PostingView("system:points_redemption", "", Currency.POINTS, 4),
    )
    txn = TransactionView("t1", "r1", Kind.HOLD_COMMIT, legs, now, "why", "ref") if with_transaction else None
    result = HoldResult(hold, BalanceView(hold.user_id, hold.currency, 96, 0), txn)
    reply = replies.commit_reply(result) if with_transaction else replies.release_reply(result)
    stored = type(reply).FromString(reply.SerializeToString(deterministic=True))
    assert replies.hold_result(stored) == result


def _forfeit_all(user: str) -> LedgerOp:
    return LedgerOp(
        "forfeit", f"all-{user}", "fp", Kind.FORFEIT, user,
        (Leg(user, domain.user_account(user), Currency.POINTS, 0), Leg("", domain.FORFEITED, Currency.POINTS, 0)),
        takes_all=True,
    )


def _earned(user: str, amount: int) -> LedgerOp:
    return LedgerOp(
        "credit", f"earn-{user}-{amount}", "fp", Kind.CREDIT, user,
        (
            Leg("", domain.POINTS_ISSUANCE, Currency.POINTS, -amount),
            Leg(user, domain.user_account(user), Currency.POINTS, amount),
        ),
        refused_if_suspended=user,
    )


def test_forfeit_all_takes_the_available_balance_as_planned_in_the_batch() -> None:
    """A credit earlier in the batch is included; a second "all" finds nothing left; held points stay."""
    balances = {("u", Currency.POINTS): (10, 4)}
    planned, deltas = domain.plan_ledger_ops([_earned("u", 5), _forfeit_all("u"), _forfeit_all("u")], balances)
    assert [p.op.legs[0].amount for p in planned[1:2]] == [-15]
    assert planned[1].balances_after == [("u", Currency.POINTS, 0, 4)]
    assert isinstance(planned[2].error, DomainError) and planned[2].error.reason == "NOTHING_TO_FORFEIT"
    assert deltas == {("u", Currency.POINTS): -10}


def test_a_suspended_users_ops_fail_alone() -> None:
    planned, deltas = domain.plan_ledger_ops([_earned("bad", 5), _earned("good", 5)], {}, suspended={"bad"})
    assert planned[0].error is not None and planned[0].error.reason == "USER_SUSPENDED"
    assert planned[1].error is None and deltas == {("good", Currency.POINTS): 5}


def test_ids_name_their_user_when_they_fit() -> None:
    unique = "0123456789abcdef" * 2
    assert owned_id("hold", unique, "alice:x.y@z") == f"hold_{unique}:alice:x.y@z"
    assert id_owner("hold", f"hold_{unique}:alice:x.y@z") == "alice:x.y@z"
    longest = "u" * (MAX_ID_LENGTH - len(f"hold_{unique}:"))
    assert id_owner("hold", owned_id("hold", unique, longest)) == longest
    assert owned_id("hold", unique, longest + "u") == f"hold_{unique}"  # too long: names no user
    for unnamed in (f"hold_{unique}", "hold_missing", f"hold_{'g' * 32}:alice", f"payout_{unique}:alice", ""):
        assert id_owner("hold", unnamed) is None, unnamed
    assert id_owner("payout", owned_id("payout", unique, "bob")) == "bob"


def test_system_legs_are_filed_under_the_user_of_their_currency() -> None:
    gift = [("s", Currency.COINS), ("", Currency.COINS), ("", Currency.COINS), ("", Currency.DIAMONDS),
            ("c", Currency.DIAMONDS)]
    assert filed_under(gift, "s") == ["s", "s", "s", "c", "c"]
    assert filed_under([("", Currency.POINTS), ("u", Currency.POINTS)], "u") == ["u", "u"]
    assert filed_under([("", Currency.POINTS), ("", Currency.POINTS)], "t") == ["t", "t"]
