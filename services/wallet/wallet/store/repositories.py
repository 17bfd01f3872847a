"""The repositories the use cases are given (their ports, `wallet.use_cases.ports`): each binds the
engine and the points-expiry setting to the statements of one store module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

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

    def __init__(self, engine: AsyncEngine, points_ttl: timedelta | None) -> None:
        self._engine = engine
        self._points_ttl = points_ttl

    async def apply(self, ops: Sequence[LedgerOp], now: datetime) -> list[LedgerOutcome]:
        return await ledger.apply_ledger_batch(self._engine, ops, now, self._points_ttl)


class PostgresHolds:
    def __init__(self, engine: AsyncEngine, points_ttl: timedelta | None) -> None:
        self._engine = engine
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
            self._engine, request_id, fingerprint, hold_id, amount, reason, now, points_ttl=self._points_ttl
        )

    async def get(self, hold_id: str) -> HoldView:
        return await reads.get_hold(self._engine, hold_id)

    async def sweep_expired(self, now: datetime, limit: int) -> int:
        return await holds.sweep_expired_holds(self._engine, now, limit)


class PostgresPayouts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def request(
        self, spec: ReserveSpec, cash_value_minor: int, cash_currency: str, rate: int, now: datetime
    ) -> PayoutView:
        return await payouts.request_payout(self._engine, spec, cash_value_minor, cash_currency, rate, now)

    async def complete(
        self, request_id: str, fingerprint: str, payout_id: str, success: bool, failure_reason: str, now: datetime
    ) -> PayoutView:
        return await payouts.complete_payout(
            self._engine, request_id, fingerprint, payout_id, success, failure_reason, now
        )


class PostgresLots:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def expire(self, now: datetime, max_accounts: int) -> list[LotExpiry]:
        return await lots.expire_lots(self._engine, now, max_accounts)


class PostgresHistory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def balances(self, user_id: str, currencies: Sequence[Currency]) -> list[BalanceView]:
        return await reads.balances(self._engine, user_id, currencies)

    async def ledger_entries(
        self, user_id: str, currency: Currency | None, before_posting: int | None, limit: int
    ) -> tuple[list[LedgerEntryView], int | None]:
        return await reads.ledger_entries(self._engine, user_id, currency, before_posting, limit)

    async def gifts(
        self, user_id: str, as_creator: bool, before_posting: int | None, limit: int
    ) -> tuple[list[GiftView], int | None]:
        return await gift_history.gifts(self._engine, user_id, as_creator, before_posting, limit)


class PostgresStanding:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def change_status(self, change: StatusChange, now: datetime) -> UserStatusView:
        return await suspensions.change_status(self._engine, change, now)

    async def user_status(self, user_id: str) -> tuple[UserStatusView, list[UserStatusChangeView]]:
        return await suspensions.user_status(self._engine, user_id)
