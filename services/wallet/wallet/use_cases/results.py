"""What the use cases answer: plain views of balances, transactions, holds, payouts, gifts and a user's standing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from wallet.domain import Currency, HoldState, Kind, PayoutState, UserStatusAction


@dataclass(frozen=True)
class BalanceView:
    user_id: str
    currency: Currency
    available: int
    held: int


@dataclass(frozen=True)
class PostingView:
    account: str
    user_id: str
    currency: Currency
    amount: int


@dataclass(frozen=True)
class TransactionView:
    transaction_id: str
    request_id: str
    kind: Kind
    postings: tuple[PostingView, ...]
    create_time: datetime
    reason: str
    reference: str


@dataclass(frozen=True)
class LedgerResult:
    """Credit, Debit and SendGift: the transaction and the balance of each user leg after it."""

    transaction: TransactionView
    balances: tuple[BalanceView, ...]
    gift_rate_bps: int = 0


@dataclass(frozen=True)
class HoldView:
    hold_id: str
    user_id: str
    currency: Currency
    amount: int
    committed_amount: int
    state: HoldState
    reference: str
    expire_time: datetime | None
    create_time: datetime
    resolve_time: datetime | None
    refunded_amount: int = 0  # of committed_amount, given back by RefundHold


@dataclass(frozen=True)
class HoldResult:
    """Reserve, CommitHold and ReleaseHold (transaction only for a commit)."""

    hold: HoldView
    balance: BalanceView
    transaction: TransactionView | None = None


@dataclass(frozen=True)
class PayoutView:
    payout_id: str
    creator_id: str
    diamonds: int
    cash_value_minor: int
    cash_currency: str
    cash_minor_per_thousand_diamonds: int
    state: PayoutState
    hold_id: str
    create_time: datetime
    complete_time: datetime | None
    failure_reason: str
    transaction_id: str


@dataclass(frozen=True)
class LedgerEntryView:
    transaction_id: str
    currency: Currency
    amount: int
    reason: str
    reference: str
    create_time: datetime
    balance_after: int
    kind: Kind


@dataclass(frozen=True)
class UserStatusChangeView:
    action: UserStatusAction
    operator_id: str
    reason: str
    ticket: str
    create_time: datetime
    request_id: str


@dataclass(frozen=True)
class UserStatusView:
    """A user's status: suspended or not, and the change that made it so (None: never suspended)."""

    user_id: str
    suspended: bool
    last_change: UserStatusChangeView | None


@dataclass(frozen=True)
class GiftView:
    """One SendGift as its ledger transaction records it."""

    transaction_id: str
    gift_id: str
    sender_id: str
    creator_id: str
    coins: int
    diamonds: int
    create_time: datetime


@dataclass(frozen=True)
class GiftResult:
    ledger: LedgerResult
    diamonds_credited: int
    sender_balance: BalanceView
    creator_balance: BalanceView
    gift_rate_bps: int
