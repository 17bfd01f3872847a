"""The wallet's one reply codec: use case results <-> the RPCs' reply messages.

The servicer answers with these messages, and the store keeps the same messages as the stored
replies of idempotent requests (`points_platform.idempotency`: proto bytes in the shared table, or
rebuilt from the rows a hold statement wrote) and decodes them back into the results the use cases
return. So a replay answers exactly what the first call answered, through one mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.idempotency import method_name
from wallet.domain import Currency, HoldState, Kind, PayoutState, UserStatusAction
from wallet.use_cases.results import (
    BalanceView,
    HoldResult,
    HoldView,
    LedgerResult,
    PayoutView,
    PostingView,
    TransactionView,
    UserStatusChangeView,
    UserStatusView,
)

SERVICE = "points.wallet.v1.WalletService"


def full_method(method: str) -> str:
    """`Credit` -> `points.wallet.v1.WalletService.Credit` (the name fingerprints and stored rows use)."""
    return method_name(SERVICE, method)


# --- views -> messages ---------------------------------------------------------------------


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def balance(b: BalanceView) -> pb.Balance:
    return pb.Balance(user_id=b.user_id, currency=int(b.currency), available=b.available, held=b.held)  # type: ignore[arg-type]


def transaction(t: TransactionView) -> pb.Transaction:
    return pb.Transaction(
        transaction_id=t.transaction_id,
        request_id=t.request_id,
        kind=int(t.kind),  # type: ignore[arg-type]
        postings=[
            pb.Posting(account=p.account, user_id=p.user_id, currency=int(p.currency), amount=p.amount)  # type: ignore[arg-type]
            for p in t.postings
        ],
        create_time=timestamp(t.create_time),
        reason=t.reason,
        reference=t.reference,
    )


def hold(h: HoldView) -> pb.Hold:
    return pb.Hold(
        hold_id=h.hold_id,
        user_id=h.user_id,
        currency=int(h.currency),  # type: ignore[arg-type]
        amount=h.amount,
        committed_amount=h.committed_amount,
        state=int(h.state),  # type: ignore[arg-type]
        reference=h.reference,
        expire_time=timestamp(h.expire_time),
        create_time=timestamp(h.create_time),
        resolve_time=timestamp(h.resolve_time),
        refunded_amount=h.refunded_amount,
    )


def payout(p: PayoutView) -> pb.Payout:
    return pb.Payout(
        payout_id=p.payout_id,
        creator_id=p.creator_id,
        diamonds=p.diamonds,
        cash_value_minor=p.cash_value_minor,
        cash_currency=p.cash_currency,
        cash_minor_per_thousand_diamonds=p.cash_minor_per_thousand_diamonds,
        state=int(p.state),  # type: ignore[arg-type]
        hold_id=p.hold_id,
        create_time=timestamp(p.create_time),
        complete_time=timestamp(p.complete_time),
        failure_reason=p.failure_reason,
        transaction_id=p.transaction_id,
    )


def status_change(c: UserStatusChangeView) -> pb.UserStatusChange:
    return pb.UserStatusChange(
        action=int(c.action),  # type: ignore[arg-type]
        operator_id=c.operator_id,
        reason=c.reason,
        ticket=c.ticket,
        create_time=timestamp(c.create_time),
        request_id=c.request_id,
    )


def user_status(v: UserStatusView) -> pb.UserStatus:
    state = pb.USER_STATE_SUSPENDED if v.suspended else pb.USER_STATE_ACTIVE
    status = pb.UserStatus(user_id=v.user_id, state=state)
    if v.last_change is not None:
        status.last_change.CopyFrom(status_change(v.last_change))
    return status


# --- results -> the RPCs' replies -------------------------------------------------------------


def credit_reply(r: LedgerResult) -> pb.CreditResponse:
    return pb.CreditResponse(transaction=transaction(r.transaction), balance=balance(r.balances[0]))


def debit_reply(r: LedgerResult) -> pb.DebitResponse:
    return pb.DebitResponse(transaction=transaction(r.transaction), balance=balance(r.balances[0]))


def gift_reply(r: LedgerResult) -> pb.SendGiftResponse:
    """The full reply (both balances); the servicer leaves the creator's out for an app caller."""
    sender, creator = r.balances
    credited = next(p.amount for p in r.transaction.postings if p.user_id == creator.user_id)
    return pb.SendGiftResponse(
        transaction=transaction(r.transaction), diamonds_credited=credited, sender_balance=balance(sender),
        creator_balance=balance(creator), gift_rate_bps=r.gift_rate_bps,
    )


def forfeit_reply(r: LedgerResult) -> pb.ForfeitPointsResponse:
    return pb.ForfeitPointsResponse(
        transaction=transaction(r.transaction), balance=balance(r.balances[0]),
        amount=-r.transaction.postings[0].amount,
    )


def reserve_reply(r: HoldResult) -> pb.ReserveResponse:
    return pb.ReserveResponse(hold=hold(r.hold), balance=balance(r.balance))


def commit_reply(r: HoldResult) -> pb.CommitHoldResponse:
    assert r.transaction is not None
    return pb.CommitHoldResponse(hold=hold(r.hold), transaction=transaction(r.transaction), balance=balance(r.balance))


def release_reply(r: HoldResult) -> pb.ReleaseHoldResponse:
    return pb.ReleaseHoldResponse(hold=hold(r.hold), balance=balance(r.balance))


def refund_reply(r: HoldResult) -> pb.RefundHoldResponse:
    assert r.transaction is not None
    return pb.RefundHoldResponse(hold=hold(r.hold), transaction=transaction(r.transaction), balance=balance(r.balance))


def request_payout_reply(p: PayoutView) -> pb.RequestPayoutResponse:
    return pb.RequestPayoutResponse(payout=payout(p))


def complete_payout_reply(p: PayoutView) -> pb.CompletePayoutResponse:
    return pb.CompletePayoutResponse(payout=payout(p))


def status_reply(method: str, v: UserStatusView) -> pb.SuspendUserResponse | pb.ReinstateUserResponse:
    if method == "SuspendUser":
        return pb.SuspendUserResponse(status=user_status(v))
    return pb.ReinstateUserResponse(status=user_status(v))


# The ledger batch's methods: the reply each stores, by method (the ledger op's `method`).
LEDGER_REPLIES: dict[str, tuple[type[Message], Callable[[LedgerResult], Message]]] = {
    "Credit": (pb.CreditResponse, credit_reply),
    "Debit": (pb.DebitResponse, debit_reply),
    "SendGift": (pb.SendGiftResponse, gift_reply),
    "ForfeitPoints": (pb.ForfeitPointsResponse, forfeit_reply),
}

HOLD_REPLIES: dict[str, tuple[type[Message], Callable[[HoldResult], Message]]] = {
    "Reserve": (pb.ReserveResponse, reserve_reply),
    "CommitHold": (pb.CommitHoldResponse, commit_reply),
    "ReleaseHold": (pb.ReleaseHoldResponse, release_reply),
    "RefundHold": (pb.RefundHoldResponse, refund_reply),
}


# --- replies -> results (replays) -----------------------------------------------------------------


def _time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _optional_time(message: Any, field: str) -> datetime | None:
    return _time(getattr(message, field)) if message.HasField(field) else None


def balance_view(b: pb.Balance) -> BalanceView:
    return BalanceView(b.user_id, Currency(b.currency), b.available, b.held)


def transaction_view(t: pb.Transaction) -> TransactionView:
    return TransactionView(
        transaction_id=t.transaction_id,
        request_id=t.request_id,
        kind=Kind(t.kind),
        postings=tuple(PostingView(p.account, p.user_id, Currency(p.currency), p.amount) for p in t.postings),
        create_time=_time(t.create_time),
        reason=t.reason,
        reference=t.reference,
    )


def hold_view(h: pb.Hold) -> HoldView:
    return HoldView(
        hold_id=h.hold_id,
        user_id=h.user_id,
        currency=Currency(h.currency),
        amount=h.amount,
        committed_amount=h.committed_amount,
        state=HoldState(h.state),
        reference=h.reference,
        expire_time=_optional_time(h, "expire_time"),
        create_time=_time(h.create_time),
        resolve_time=_optional_time(h, "resolve_time"),
        refunded_amount=h.refunded_amount,
    )


def ledger_result(reply: Message) -> LedgerResult:
    """A ledger reply (Credit, Debit, SendGift, ForfeitPoints) back into the use case's result."""
    r: Any = reply
    if isinstance(reply, pb.SendGiftResponse):
        balances = (balance_view(reply.sender_balance), balance_view(reply.creator_balance))
        return LedgerResult(transaction_view(reply.transaction), balances, reply.gift_rate_bps)
    return LedgerResult(transaction_view(r.transaction), (balance_view(r.balance),))


def hold_result(reply: Message) -> HoldResult:
    """A hold reply (Reserve, CommitHold, ReleaseHold, RefundHold) back into the use case's result."""
    r: Any = reply
    txn = transaction_view(r.transaction) if reply.DESCRIPTOR.fields_by_name.get("transaction") else None
    return HoldResult(hold_view(r.hold), balance_view(r.balance), txn)


def payout_view(reply: pb.RequestPayoutResponse | pb.CompletePayoutResponse) -> PayoutView:
    p = reply.payout
    return PayoutView(
        payout_id=p.payout_id,
        creator_id=p.creator_id,
        diamonds=p.diamonds,
        cash_value_minor=p.cash_value_minor,
        cash_currency=p.cash_currency,
        cash_minor_per_thousand_diamonds=p.cash_minor_per_thousand_diamonds,
        state=PayoutState(p.state),
        hold_id=p.hold_id,
        create_time=_time(p.create_time),
        complete_time=_optional_time(p, "complete_time"),
        failure_reason=p.failure_reason,
        transaction_id=p.transaction_id,
    )


def user_status_view(reply: pb.SuspendUserResponse | pb.ReinstateUserResponse) -> UserStatusView:
    s = reply.status
    change = None
    if s.HasField("last_change"):
        c = s.last_change
        change = UserStatusChangeView(
            UserStatusAction(c.action), c.operator_id, c.reason, c.ticket, _time(c.create_time), c.request_id
        )
    return UserStatusView(s.user_id, s.state == pb.USER_STATE_SUSPENDED, change)
