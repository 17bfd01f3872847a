"""Serialization/deadlock failures are retried; contention that outlasts the retries is ABORTED."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from points_platform.db import retry_serialization
from points_platform.errors import Aborted


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
    assert await retry_serialization(attempt, base_delay=0) == "done"  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_exhausted_contention_is_aborted_not_internal() -> None:
    calls, attempt = _failing("40001", 99)
    with pytest.raises(Aborted) as caught:
        await retry_serialization(attempt, attempts=3, base_delay=0)  # type: ignore[arg-type]
    assert caught.value.reason == "TRANSACTION_CONFLICT" and len(calls) == 3


async def test_other_database_errors_are_not_retried() -> None:
    calls, attempt = _failing("23505", 99)
    with pytest.raises(DBAPIError):
        await retry_serialization(attempt, base_delay=0)  # type: ignore[arg-type]
    assert len(calls) == 1
