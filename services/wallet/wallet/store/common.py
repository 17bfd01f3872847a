"""Idempotency records and row -> view mapping shared by the store modules."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from points_platform.db import RETRYABLE_SQLSTATES, retry_serialization
from points_platform.errors import Aborted, idempotency_key_reused
from wallet.domain import Currency, HoldState, Kind, PayoutState
from wallet.results import BalanceView, HoldView, PayoutView, PostingView, TransactionView

T = TypeVar("T")


class RequestIdRaceError(Exception):
    """A concurrent call with the same request_id committed first: redo, and replay its answer."""


class PaymentReferenceRaceError(RequestIdRaceError):
    """A concurrent batch credited the same payment reference first: redo (the refused payment then
    fails alone with PAYMENT_ALREADY_CREDITED, its neighbours apply)."""


def new_id() -> str:
    """32 hex digits: the time in milliseconds (12), then 80 random bits (20).

    Time-ordered like a UUIDv7, so the batch's new keys land on the rightmost pages of the
    transaction indexes instead of on a hundred random ones (each page first dirtied after a
    checkpoint costs a full 8 kB image in the WAL)."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The raw asyncpg connection under a SQLAlchemy one (hot paths: statements prepared once)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection  # type: ignore[return-value]


async def run_transaction(attempt: Callable[[], Awaitable[T]], *, races: int = 3) -> T:
    """Retry serialization/deadlock failures (raised through SQLAlchemy or by raw asyncpg), and
    redo after losing a same-key race."""

    async def attempt_wrapped() -> T:
        try:
            return await attempt()
        except asyncpg.PostgresError as exc:
            if exc.sqlstate in RETRYABLE_SQLSTATES:
                raise DBAPIError("raw asyncpg", None, exc) from exc  # what retry_serialization retries
            raise

    for n in range(races):
        try:
            return await retry_serialization(attempt_wrapped)
        except RequestIdRaceError as exc:
            if n == races - 1:
                # Still losing to same-key calls: the caller retries (and then gets the replay).
                raise Aborted("CONCURRENT_REQUEST", "a concurrent call with this request_id is in progress") from exc
    raise AssertionError("unreachable")


async def stored_response(conn: AsyncConnection, op: str, request_id: str, fingerprint: str) -> str | None:
    """The stored answer of an earlier call with this key, or None; reuse with other params fails."""
    row = (
        await conn.execute(
            text("SELECT fingerprint, response FROM idempotency WHERE op = :op AND request_id = :rid"),
            {"op": op, "rid": request_id},
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise idempotency_key_reused(request_id)
    return str(row.response)


async def remember(
    conn: AsyncConnection, op: str, request_id: str, fingerprint: str, response: str, now: datetime
) -> None:
    """Record the answer in the same transaction as the effect (unique on op + request_id)."""
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO idempotency (op, request_id, fingerprint, response, create_time) "
                "VALUES (:op, :rid, :fp, :resp, :now) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {"op": op, "rid": request_id, "fp": fingerprint, "resp": response, "now": now},
        )
    ).first()
    if inserted is None:
        raise RequestIdRaceError(request_id)


def hold_view(row: Any) -> HoldView:
    return HoldView(
        hold_id=row.hold_id,
        user_id=row.user_id,
        currency=Currency(row.currency),
        amount=row.amount,
        committed_amount=row.committed_amount,
        state=HoldState(row.state),
        reference=row.reference,
        expire_time=row.expire_time,
        create_time=row.create_time,
        resolve_time=row.resolve_time,
        refunded_amount=row.refunded_amount,
    )


def hold_record_view(r: asyncpg.Record) -> HoldView:
    """hold_view of a raw asyncpg record (columns by name)."""
    return HoldView(
        hold_id=r["hold_id"],
        user_id=r["user_id"],
        currency=Currency(r["currency"]),
        amount=r["amount"],
        committed_amount=r["committed_amount"],
        state=HoldState(r["state"]),
        reference=r["reference"],
        expire_time=r["expire_time"],
        create_time=r["create_time"],
        resolve_time=r["resolve_time"],
        refunded_amount=r["refunded_amount"],
    )


def payout_view(row: Any) -> PayoutView:
    return PayoutView(
        payout_id=row.payout_id,
        creator_id=row.creator_id,
        diamonds=row.diamonds,
        cash_value_minor=row.cash_value_minor,
        cash_currency=row.cash_currency,
        cash_minor_per_thousand_diamonds=row.cash_minor_per_thousand_diamonds,
        state=PayoutState(row.state),
        hold_id=row.hold_id,
        create_time=row.create_time,
        complete_time=row.complete_time,
        failure_reason=row.failure_reason,
        transaction_id=row.transaction_id,
    )


def balance(user_id: str, currency: Currency, available: int, held: int) -> BalanceView:
    return BalanceView(user_id, currency, available, held)


async def insert_transaction(
    conn: AsyncConnection,
    txn: TransactionView,
    user_id: str,
    balances_after: dict[tuple[str, str, Currency], int],
) -> None:
    """One transaction and its postings (balance_after for user legs) in one round trip."""
    await conn.execute(
        text(
            "WITH t AS (INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference,"
            " create_time) VALUES (:tid, :uid, :rid, :kind, :reason, :ref, :now)) "
            "INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after) "
            "SELECT :tid, * FROM unnest(CAST(:users AS text[]), CAST(:accounts AS text[]),"
            " CAST(:currencies AS smallint[]), CAST(:amounts AS bigint[]), CAST(:after AS bigint[]))"
        ),
        {
            "tid": txn.transaction_id,
            "uid": user_id,
            "rid": txn.request_id,
            "kind": int(txn.kind),
            "reason": txn.reason,
            "ref": txn.reference,
            "now": txn.create_time,
            "users": [p.user_id for p in txn.postings],
            "accounts": [p.account for p in txn.postings],
            "currencies": [int(p.currency) for p in txn.postings],
            "amounts": [p.amount for p in txn.postings],
            "after": [balances_after.get((p.user_id, p.account, p.currency)) for p in txn.postings],
        },
    )


def transaction_view(
    transaction_id: str, request_id: str, kind: Kind, postings: tuple[PostingView, ...], now: datetime,
    reason: str, reference: str,
) -> TransactionView:
    return TransactionView(transaction_id, request_id, kind, postings, now, reason, reference)
