"""The earning database as the use cases see it: transactions handing out the repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from earning.store.activity import ActivityRepository
from earning.store.admin import AdminRepository
from earning.store.batch import BatchRepository
from earning.store.outbox import OutboxRepository
from points_platform.db import retry_serialization

T = TypeVar("T")

# A unique violation means a concurrent twin committed the same key first (an event id, a request
# id): the next attempt sees its row and replays it. Bounded: a key that keeps colliding is a bug.
TWIN_ATTEMPTS = 3


class Session:
    """The repositories of one connection, in the transaction that opened it."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.batch = BatchRepository(conn)
        self.activity = ActivityRepository(conn)
        self.admin = AdminRepository(conn)
        self.outbox = OutboxRepository(conn)


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """One read-write transaction: committed when the block ends, rolled back on an error."""
        async with self._engine.begin() as conn:
            yield Session(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Session]:
        """Reads (each statement its own snapshot); nothing to commit."""
        async with self._engine.connect() as conn:
            yield Session(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Session]:
        """Reads from one read-only snapshot: every read sees the same state, and a write fails."""
        async with self._engine.connect() as conn:
            await BatchRepository(conn).begin_snapshot()
            yield Session(conn)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Session]:
        """Each statement commits on its own: one statement is atomic without BEGIN/COMMIT."""
        async with self._engine.connect() as conn:
            yield Session(await conn.execution_options(isolation_level="AUTOCOMMIT"))

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` (which opens its own transaction) again after a serialization failure or
        deadlock, and after a concurrent twin's unique violation."""
        for _ in range(TWIN_ATTEMPTS):
            try:
                return await retry_serialization(attempt)
            except IntegrityError:
                continue
        return await retry_serialization(attempt)
