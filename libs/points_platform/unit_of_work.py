"""The unit of work: one database transaction that use cases receive and repositories run on.

`Transactions` hands out `Transaction`s (`async with transactions.begin() as tx`): commit when the
block ends normally, roll back when it raises. A repository reaches the transaction's SQLAlchemy
connection (`tx.connection`) and, for hand-tuned hot statements, the raw asyncpg connection **of
the same transaction** (`await tx.driver()`): never a connection opened beside it, whose writes
would commit or roll back on their own.

`transactions.run(work)` runs `work(tx)` in a fresh transaction and runs it again, from the start,
when PostgreSQL gave up on it for a reason a fresh attempt resolves: a serialization failure
(40001), a deadlock (40P01), or `RaceLost` (the work found that another transaction committed
the same key first, such as an idempotency key; see `points_platform.idempotency`). Failures back
off with full jitter, bounded; a race lost is run again at once (the winner has committed by the
time PostgreSQL reports the loser's unique violation). Contention that outlasts the attempts is
`ABORTED TRANSACTION_CONFLICT`, never INTERNAL. The sleep and the jitter are injectable so tests
step through the retries without waiting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import asyncpg
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_platform.db import RETRYABLE_SQLSTATES, sqlstate
from points_platform.errors import Aborted

log = structlog.get_logger("points.db")

T = TypeVar("T")


class RaceLost(Exception):  # noqa: N818 - an outcome the unit of work acts on, not an error
    """Raised by work that lost a race for a unique key to a transaction that has committed:
    `Transactions.run` rolls back and runs the work again, which then finds the winner's rows."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently `Transactions.run` tries again.

    Delay before attempt n+1 after a database conflict: uniform in [0, min(max_delay,
    base_delay * 2**n)) (full jitter, so racing retriers spread out instead of colliding again)."""

    attempts: int = 5
    base_delay: float = 0.005
    max_delay: float = 0.25
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        return self.jitter() * min(self.max_delay, self.base_delay * 2.0**attempt)


def is_retryable_conflict(exc: BaseException) -> bool:
    """A serialization failure or deadlock, through SQLAlchemy or straight from asyncpg."""
    return isinstance(exc, DBAPIError | asyncpg.PostgresError) and sqlstate(exc) in RETRYABLE_SQLSTATES


async def retry(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """`attempt()` until it returns, retrying conflicts and lost races within `policy`."""
    for n in range(1, policy.attempts + 1):
        try:
            return await attempt()
        except RaceLost:
            if n == policy.attempts:
                raise Aborted("CONCURRENT_REQUEST", "a concurrent request kept winning; retry the request") from None
            log.info("db_retry", attempt=n, cause="race_lost")
        except (DBAPIError, asyncpg.PostgresError) as exc:
            if not is_retryable_conflict(exc):
                raise
            if n == policy.attempts:
                # Contention, not a bug: ABORTED tells the caller to retry (never INTERNAL).
                raise Aborted("TRANSACTION_CONFLICT", "concurrent updates conflicted; retry the request") from exc
            log.info("db_retry", attempt=n, sqlstate=sqlstate(exc))
            await policy.sleep(policy.delay(n))
    raise AssertionError("unreachable")


class Transaction:
    """One open transaction. Repositories take it and run their statements on it."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self._driver: asyncpg.Connection[Any] | None = None

    async def driver(self) -> asyncpg.Connection[Any]:
        """The raw asyncpg connection, inside this transaction.

        SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement; a raw statement
        before that would run (and commit) outside the transaction. So the adapter is told to begin
        now, and the check below fails loudly should a SQLAlchemy upgrade change that."""
        if self._driver is None:
            fairy = await self.connection.get_raw_connection()
            adapted: Any = fairy.dbapi_connection
            driver = cast("asyncpg.Connection[Any]", fairy.driver_connection)
            if adapted._transaction is None:
                await adapted._start_transaction()
            if not driver.is_in_transaction():
                raise RuntimeError("the asyncpg connection is not inside the unit of work's transaction")
            self._driver = driver
        return self._driver


class Transactions:
    """The source of a service's units of work: one per engine, built by the composition root."""

    def __init__(self, engine: AsyncEngine, *, isolation_level: str | None = None,
                 retry_policy: RetryPolicy | None = None) -> None:
        self.engine = engine
        self.isolation_level = isolation_level
        self.retry_policy = retry_policy or RetryPolicy()
        self._levels: dict[str, AsyncEngine] = {}

    def _at_level(self, level: str) -> AsyncEngine:
        """The engine at an isolation level: one proxy per level, sharing the pool."""
        engine = self._levels.get(level)
        if engine is None:
            engine = self._levels[level] = self.engine.execution_options(isolation_level=level)
        return engine

    @asynccontextmanager
    async def begin(self, *, isolation_level: str | None = None) -> AsyncIterator[Transaction]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        level = isolation_level or self.isolation_level
        engine = self._at_level(level) if level else self.engine
        async with engine.begin() as connection:
            yield Transaction(connection)

    async def run(self, work: Callable[[Transaction], Awaitable[T]], *, isolation_level: str | None = None,
                  retry_policy: RetryPolicy | None = None) -> T:
        """`work(tx)` in a transaction of its own, run again from the start on a conflict.

        `work` must be safe to run again: everything it wrote was rolled back, but anything it did
        outside the database (a call to another service) was not, so it makes no such call."""

        async def attempt() -> T:
            async with self.begin(isolation_level=isolation_level) as tx:
                return await work(tx)

        return await retry(attempt, retry_policy or self.retry_policy)
