"""Idempotency records (op + request_id, unique, written in the same transaction as the effect),
the races a write can lose, and the retry of the statements that run outside a unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from points_platform.errors import idempotency_key_reused
from points_platform.unit_of_work import RaceLost, RetryPolicy, retry

T = TypeVar("T")

RETRY = RetryPolicy()


class RequestIdRaceError(RaceLost):
    """A concurrent call with the same request_id committed first: redo, and replay its answer."""


class PaymentReferenceRaceError(RequestIdRaceError):
    """A concurrent batch credited the same payment reference first: redo (the refused payment then
    fails alone with PAYMENT_ALREADY_CREDITED, its neighbours apply)."""


async def run_statement(attempt: Callable[[], Awaitable[T]]) -> T:
    """The hold hot path's single statements, each its own implicit transaction (no BEGIN/COMMIT
    round trips, so not a unit of work): retried by the unit of work's rules all the same
    (serialization failures and deadlocks with backoff, a lost same-key race at once)."""
    return await retry(attempt, RETRY)


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
