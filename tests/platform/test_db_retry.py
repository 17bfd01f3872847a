"""Serialization/deadlock failures are retried; contention that outlasts the retries is ABORTED;
an unreachable database is told from a bug (UNAVAILABLE, not INTERNAL)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from points_platform.db import is_database_unavailable
from points_platform.errors import Aborted
from points_platform.unit_of_work import RetryPolicy, retry


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _failing(sqlstate: str, times: int) -> tuple[list[int], object]:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise DBAPIError("UPDATE ...", None, _PgError(sqlstate))
        return "done"

    return calls, attempt


async def test_retries_then_succeeds() -> None:
    calls, attempt = _failing("40P01", 2)
    assert await retry(attempt, RetryPolicy(base_delay=0)) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_exhausted_contention_is_aborted_not_internal() -> None:
    calls, attempt = _failing("40001", 99)
    with pytest.raises(Aborted) as caught:
        await retry(attempt, RetryPolicy(attempts=3, base_delay=0))  # type: ignore[arg-type]
    assert caught.value.reason == "TRANSACTION_CONFLICT" and len(calls) == 3


async def test_other_database_errors_are_not_retried() -> None:
    calls, attempt = _failing("23505", 99)
    with pytest.raises(DBAPIError):
        await retry(attempt, RetryPolicy(base_delay=0))  # type: ignore[arg-type]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (DBAPIError("SELECT 1", None, _PgError("08006")), True),  # connection failure
        (DBAPIError("SELECT 1", None, _PgError("57P03")), True),  # the server is starting
        (_PgError("57P01"), True),  # terminated by the administrator (raw asyncpg)
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
        (asyncpg.exceptions.InterfaceError("connection is closed"), True),
        # a dead connection noticed while its last operation was still unfinished
        (
            asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
            True,
        ),
        (asyncpg.exceptions.InternalClientError("unexpected"), False),
        (_PgError("55000"), False),  # object not in prerequisite state: a bug, unless...
        (DBAPIError("SELECT 1", None, _PgError("23505")), False),  # unique violation
        (asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"), False),
        (ValueError("bug"), False),
    ],
)
def test_an_outage_is_told_from_a_bug(error: BaseException, outage: bool) -> None:
    assert is_database_unavailable(error) is outage


def test_a_database_closed_to_connections_is_an_outage() -> None:
    closed = _PgError("55000")
    closed.args = ('database "points" is not currently accepting connections',)
    assert is_database_unavailable(closed)
    wrapped = RuntimeError("while recording")
    wrapped.__cause__ = DBAPIError("SELECT 1", None, _PgError("08001"))
    assert is_database_unavailable(wrapped)
