"""What the use cases need from storage, as Protocols (the store's repositories implement them),
and the specs the use cases hand over.

Each method is one database transaction (or one statement) that applies its effect and stores the
answer under the request id in the same transaction; a replay answers the stored result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from points_platform.errors import DomainError
from wallet.domain import Currency, LedgerOp, LotExpiry, UserStatusAction
from wallet.use_cases.results import (
    BalanceView,
    GiftView,
    HoldResult,
    HoldView,
    LedgerEntryView,
    LedgerResult,
    PayoutView,
    UserStatusChangeView,
    UserStatusView,
)

# A ledger operation's own outcome in a batch: its result (new or replayed) or its refusal.
LedgerOutcome = LedgerResult | DomainError

PAYOUT_PURPOSE = "payout"


@dataclass(frozen=True)
class ReserveSpec:
    """A hold to place: by Reserve, or by RequestPayout (purpose PAYOUT_PURPOSE, no expiry)."""

    request_id: str
    fingerprint: str
    user_id: str
    currency: Currency
    amount: int
    reference: str
    expire_time: datetime | None
    purpose: str = ""


@dataclass(frozen=True)
class StatusChange:
    request_id: str
    fingerprint: str
    user_id: str
    action: UserStatusAction
    operator_id: str
    reason: str
    ticket: str


class LedgerStore(Protocol):
    async def apply(self, ops: Sequence[LedgerOp], now: datetime) -> list[LedgerOutcome]:
        """Each op's outcome, in order, from one transaction for the whole batch."""


class HoldStore(Protocol):
    async def reserve(self, spec: ReserveSpec, now: datetime) -> HoldResult: ...

    async def commit(
        self, request_id: str, fingerprint: str, hold_id: str, amount: int, reason: str, now: datetime
    ) -> HoldResult: ...

    async def release(self, request_id: str, fingerprint: str, hold_id: str, now: datetime) -> HoldResult: ...

    async def refund(
        self, request_id: str, fingerprint: str, hold_id: str, amount: int, reason: str, now: datetime
    ) -> tuple[HoldResult, int]:
        """The result and the amount this call gave back (0 on a replay)."""

    async def get(self, hold_id: str) -> HoldView: ...

    async def sweep_expired(self, now: datetime, limit: int) -> int:
        """Expire up to `limit` holds past their time; returns how many."""


class PayoutStore(Protocol):
    async def request(
        self, spec: ReserveSpec, cash_value_minor: int, cash_currency: str, rate: int, now: datetime
    ) -> PayoutView: ...

    async def complete(
        self, request_id: str, fingerprint: str, payout_id: str, success: bool, failure_reason: str, now: datetime
    ) -> PayoutView: ...


class LotStore(Protocol):
    async def expire(self, now: datetime, max_accounts: int) -> list[LotExpiry]:
        """Post expired lots' remainders for up to `max_accounts` accounts."""


class HistoryStore(Protocol):
    async def balances(self, user_id: str, currencies: Sequence[Currency]) -> list[BalanceView]: ...

    async def ledger_entries(
        self, user_id: str, currency: Currency | None, before_posting: int | None, limit: int
    ) -> tuple[list[LedgerEntryView], int | None]:
        """Newest first, and the posting id to continue before (None = last page)."""

    async def gifts(
        self, user_id: str, as_creator: bool, before_posting: int | None, limit: int
    ) -> tuple[list[GiftView], int | None]: ...


class StandingStore(Protocol):
    async def change_status(self, change: StatusChange, now: datetime) -> UserStatusView: ...

    async def user_status(self, user_id: str) -> tuple[UserStatusView, list[UserStatusChangeView]]: ...
