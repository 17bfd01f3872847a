"""The repositories the use cases are given (their ports, `wallet.use_cases.ports`): each binds the
unit of work and the points-expiry setting to the statements of one store module.

A method that writes is one unit of work (`Transactions.run`: retried on serialization failures,
deadlocks and lost same-key races), except the hold hot path (Reserve, CommitHold, ReleaseHold),
whose effect is one statement in its own implicit transaction on a pooled connection (no
BEGIN/COMMIT round trips), retried by the same rules; reads run on a pooled connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from points_platform.read_pool import ReadPool
from points_platform.unit_of_work import Transactions
from wallet.domain import Currency, LedgerOp, LotExpiry
from wallet.store import gift_history, holds, ledger, lots, payouts, reads, refunds, suspensions
from wallet.use_cases.ports import LedgerOutcome, ReserveSpec, StatusChange
from wallet.use_cases.results import (
    BalanceView,
    GiftView,
    HoldResult,
    HoldView,
    LedgerEntryView,
    PayoutView,
    UserStatusChangeView,
    UserStatusView,
)


class PostgresLedger:
    """Batches of credits, debits, gifts and forfeits (`points_ttl`: expiry on, lots are kept)."""

    def __init__(self, transactions: Transactions, points_ttl: timedelta | None) -> None:
        self._transactions = transactions
        self._points_ttl = points_ttl

    async def apply(self, ops: Sequence[LedgerOp], now: datetime) -> list[LedgerOutcome]:
        return await ledger.apply_ledger_batch(self._transactions, ops, now, self._points_ttl)


class PostgresHolds:
    def __init__(self, transactions: Transactions, points_ttl: timedelta | None) -> None:
        self._transactions = transactions
        self._engine = transactions.engine
        self._points_ttl = points_ttl

    async def reserve(self, spec: ReserveSpec, now: datetime) -> HoldResult:
        return await holds.reserve(self._engine, spec, now)

    async def commit(
        self, request_id: str, fingerprint: str, hold_id: str, amount: int, reason: str, now: datetime
    ) -> HoldResult:
        return await holds.commit_hold(
            self._engine, request_id, fingerprint, hold_id, amount, reason, now,
            points_lots=self._points_ttl is not None,
        )

    async def release(self, request_id: str, fingerprint: str, hold_id: str, now: datetime) -> HoldResult:
        return await holds.release_hold(self._engine, request_id, fingerprint, hold_id, now)

    async def refund(
        self, request_id: str, fingerprint: str, hold_id: str, amount: int, reason: str, now: datetime
    ) -> tuple[HoldResult, int]:
        return await refunds.refund_hold(
            self._transactions, request_id, fingerprint, hold_id, amount, reason, now, points_ttl=self._points_ttl
        )

    async def get(self, hold_id: str) -> HoldView:
        return await reads.get_hold(self._engine, hold_id)

    async def sweep_expired(self, now: datetime, limit: int) -> int:
        return await holds.sweep_expired_holds(self._transactions, now, limit)


class PostgresPayouts:
    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    async def request(
        self, spec: ReserveSpec, cash_value_minor: int, cash_currency: str, rate: int, now: datetime
    ) -> PayoutView:
        return await payouts.request_payout(self._transactions, spec, cash_value_minor, cash_currency, rate, now)

    async def complete(
        self, request_id: str, fingerprint: str, payout_id: str, success: bool, failure_reason: str, now: datetime
    ) -> PayoutView:
        return await payouts.complete_payout(
            self._transactions, request_id, fingerprint, payout_id, success, failure_reason, now
        )


class PostgresLots:
    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    async def expire(self, now: datetime, max_accounts: int) -> list[LotExpiry]:
        return await lots.expire_lots(self._transactions, now, max_accounts)


class PostgresHistory:
    def __init__(self, transactions: Transactions, read_pool: ReadPool) -> None:
        self._engine = transactions.engine
        self._read_pool = read_pool

    async def balances(self, user_id: str, currencies: Sequence[Currency]) -> list[BalanceView]:
        return await reads.balances(self._read_pool, user_id, currencies)

    async def ledger_entries(
        self, user_id: str, currency: Currency | None, before_posting: int | None, limit: int
    ) -> tuple[list[LedgerEntryView], int | None]:
        return await reads.ledger_entries(self._engine, user_id, currency, before_posting, limit)

    async def gifts(
        self, user_id: str, as_creator: bool, before_posting: int | None, limit: int
    ) -> tuple[list[GiftView], int | None]:
        return await gift_history.gifts(self._engine, user_id, as_creator, before_posting, limit)


class PostgresStanding:
    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions
        self._engine = transactions.engine

    async def change_status(self, change: StatusChange, now: datetime) -> UserStatusView:
        return await suspensions.change_status(self._transactions, change, now)

    async def user_status(self, user_id: str) -> tuple[UserStatusView, list[UserStatusChangeView]]:
        return await suspensions.user_status(self._engine, user_id)
