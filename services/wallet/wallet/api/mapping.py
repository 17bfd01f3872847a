"""Proto <-> use case mapping: requests become commands, read results become messages (no rules
here); the mutating RPCs' replies come from the one reply codec, `wallet.replies`."""

from __future__ import annotations

from points.wallet.v1 import wallet_pb2
from wallet import use_cases as uc
from wallet.replies import timestamp
from wallet.use_cases.results import GiftView, LedgerEntryView

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


# --- read results -> messages (the mutating RPCs' replies: wallet.replies) ---------------------


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
