"""Proto <-> use case mapping: requests become commands, results become replies (no rules here)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from points.wallet.v1 import wallet_pb2
from wallet import use_cases as uc
from wallet.use_cases.results import (
    BalanceView,
    GiftView,
    HoldResult,
    HoldView,
    LedgerEntryView,
    LedgerResult,
    PayoutView,
    TransactionView,
    UserStatusChangeView,
    UserStatusView,
)

# --- requests -> commands ----------------------------------------------------------------


def credit(r: wallet_pb2.CreditRequest | wallet_pb2.CreditBatchEntry) -> uc.Credit:
    return uc.Credit(r.request_id, r.user_id, int(r.currency), r.amount, r.reason, r.reference)


def debit(r: wallet_pb2.DebitRequest) -> uc.Debit:
    return uc.Debit(r.request_id, r.user_id, int(r.currency), r.amount, r.reason, r.reference)


def reserve(r: wallet_pb2.ReserveRequest) -> uc.Reserve:
    return uc.Reserve(r.request_id, r.user_id, int(r.currency), r.amount, r.ttl_seconds, r.reference)


def commit_hold(r: wallet_pb2.CommitHoldRequest) -> uc.CommitHold:
    return uc.CommitHold(r.request_id, r.hold_id, r.amount, r.reason)


def release_hold(r: wallet_pb2.ReleaseHoldRequest) -> uc.ReleaseHold:
    return uc.ReleaseHold(r.request_id, r.hold_id)


def refund_hold(r: wallet_pb2.RefundHoldRequest) -> uc.RefundHold:
    return uc.RefundHold(r.request_id, r.hold_id, r.amount, r.reason)


def send_gift(r: wallet_pb2.SendGiftRequest) -> uc.SendGift:
    return uc.SendGift(r.request_id, r.sender_id, r.creator_id, r.coins, r.gift_id)


def request_payout(r: wallet_pb2.RequestPayoutRequest) -> uc.RequestPayout:
    return uc.RequestPayout(r.request_id, r.creator_id, r.diamonds)


def complete_payout(r: wallet_pb2.CompletePayoutRequest) -> uc.CompletePayout:
    return uc.CompletePayout(r.request_id, r.payout_id, r.success, r.failure_reason)


def status_command(r: wallet_pb2.SuspendUserRequest | wallet_pb2.ReinstateUserRequest) -> uc.ChangeUserStatus:
    return uc.ChangeUserStatus(r.request_id, r.user_id, r.reason, r.ticket, r.operator_id)


def forfeit(r: wallet_pb2.ForfeitPointsRequest) -> uc.ForfeitPoints:
    return uc.ForfeitPoints(r.request_id, r.user_id, r.amount, r.all, r.reason, r.ticket)


# --- results -> replies -------------------------------------------------------------------


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def balance(b: BalanceView) -> wallet_pb2.Balance:
    return wallet_pb2.Balance(user_id=b.user_id, currency=int(b.currency), available=b.available, held=b.held)  # type: ignore[arg-type]


def transaction(t: TransactionView) -> wallet_pb2.Transaction:
    return wallet_pb2.Transaction(
        transaction_id=t.transaction_id,
        request_id=t.request_id,
        kind=int(t.kind),  # type: ignore[arg-type]
        postings=[
            wallet_pb2.Posting(account=p.account, user_id=p.user_id, currency=int(p.currency), amount=p.amount)  # type: ignore[arg-type]
            for p in t.postings
        ],
        create_time=timestamp(t.create_time),
        reason=t.reason,
        reference=t.reference,
    )


def hold(h: HoldView) -> wallet_pb2.Hold:
    return wallet_pb2.Hold(
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


def payout(p: PayoutView) -> wallet_pb2.Payout:
    return wallet_pb2.Payout(
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


def status_change(c: UserStatusChangeView) -> wallet_pb2.UserStatusChange:
    return wallet_pb2.UserStatusChange(
        action=int(c.action),  # type: ignore[arg-type]
        operator_id=c.operator_id,
        reason=c.reason,
        ticket=c.ticket,
        create_time=timestamp(c.create_time),
        request_id=c.request_id,
    )


def user_status(v: UserStatusView) -> wallet_pb2.UserStatus:
    state = wallet_pb2.USER_STATE_SUSPENDED if v.suspended else wallet_pb2.USER_STATE_ACTIVE
    status = wallet_pb2.UserStatus(user_id=v.user_id, state=state)
    if v.last_change is not None:
        status.last_change.CopyFrom(status_change(v.last_change))
    return status


def ledger_pair(result: LedgerResult) -> tuple[wallet_pb2.Transaction, wallet_pb2.Balance]:
    return transaction(result.transaction), balance(result.balances[0])


def hold_reply(result: HoldResult) -> dict[str, object]:
    reply: dict[str, object] = {"hold": hold(result.hold), "balance": balance(result.balance)}
    if result.transaction is not None:
        reply["transaction"] = transaction(result.transaction)
    return reply


def ledger_entry(e: LedgerEntryView) -> wallet_pb2.LedgerEntry:
    return wallet_pb2.LedgerEntry(
        transaction_id=e.transaction_id,
        currency=int(e.currency),  # type: ignore[arg-type]
        amount=e.amount,
        reason=e.reason,
        reference=e.reference,
        create_time=timestamp(e.create_time),
        balance_after=e.balance_after,
        kind=int(e.kind),  # type: ignore[arg-type]
    )


def gift(g: GiftView) -> wallet_pb2.Gift:
    return wallet_pb2.Gift(
        transaction_id=g.transaction_id, gift_id=g.gift_id, sender_id=g.sender_id, creator_id=g.creator_id,
        coins=g.coins, diamonds=g.diamonds, create_time=timestamp(g.create_time),
    )
