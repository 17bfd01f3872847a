"""Commands the transport hands to the use cases, and the gift result."""

from __future__ import annotations

from dataclasses import dataclass

from wallet.results import BalanceView, LedgerResult


@dataclass(frozen=True)
class Credit:
    request_id: str
    user_id: str
    currency: int
    amount: int
    reason: str = ""
    reference: str = ""


@dataclass(frozen=True)
class Debit(Credit):
    pass


@dataclass(frozen=True)
class Reserve:
    request_id: str
    user_id: str
    currency: int
    amount: int
    ttl_seconds: int = 0
    reference: str = ""


@dataclass(frozen=True)
class HoldAmountCommand:
    """A hold, an amount of it (0 = all) and a reason: what CommitHold and RefundHold share."""

    request_id: str
    hold_id: str
    amount: int = 0
    reason: str = ""


@dataclass(frozen=True)
class CommitHold(HoldAmountCommand):
    """amount 0 = the whole hold; the rest is released."""


@dataclass(frozen=True)
class ReleaseHold:
    request_id: str
    hold_id: str


@dataclass(frozen=True)
class RefundHold(HoldAmountCommand):
    """amount 0 = everything of the committed amount not refunded yet."""


@dataclass(frozen=True)
class SendGift:
    request_id: str
    sender_id: str
    creator_id: str
    coins: int
    gift_id: str = ""


@dataclass(frozen=True)
class RequestPayout:
    request_id: str
    creator_id: str
    diamonds: int


@dataclass(frozen=True)
class CompletePayout:
    request_id: str
    payout_id: str
    success: bool
    failure_reason: str = ""


@dataclass(frozen=True)
class GiftResult:
    ledger: LedgerResult
    diamonds_credited: int
    sender_balance: BalanceView
    creator_balance: BalanceView
    gift_rate_bps: int


@dataclass(frozen=True)
class ChangeUserStatus:
    """SuspendUser and ReinstateUser: who is changed, why, under which ticket, by which operator."""

    request_id: str
    user_id: str
    reason: str
    ticket: str
    operator_id: str


@dataclass(frozen=True)
class ForfeitPoints:
    """amount > 0, or all (the whole available balance when the forfeit applies)."""

    request_id: str
    user_id: str
    amount: int
    all: bool
    reason: str
    ticket: str
