"""Idempotency records (op + request_id, unique, written in the same transaction as the effect)
and the runner that retries a transaction after a serialization failure or a lost same-key race."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from points_platform.db import RETRYABLE_SQLSTATES, retry_serialization
from points_platform.errors import Aborted, idempotency_key_reused

T = TypeVar("T")


class RequestIdRaceError(Exception):
    """A concurrent call with the same request_id committed first: redo, and replay its answer."""


class PaymentReferenceRaceError(RequestIdRaceError):
    """A concurrent batch credited the same payment reference first: redo (the refused payment then
    fails alone with PAYMENT_ALREADY_CREDITED, its neighbours apply)."""


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
