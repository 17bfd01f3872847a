"""A few raw asyncpg connections for single-statement reads on a service's hot path.

Why not the engine's pool: a checkout through SQLAlchemy's async pool (greenlet hand-offs, checkout
events, reset on return) costs about as much CPU as the read itself. A read of one statement needs
none of it: in autocommit it is its own snapshot, so no BEGIN/COMMIT, and it leaves no state behind,
so a connection goes back without a reset. asyncpg prepares each statement once per connection.

Only reads go here (one statement, no transaction, no session state): a write must stay on the
engine, inside the platform's unit of work or the hot paths' single-statement writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg

_BROKEN = (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)  # closing: terminate instead


class ReadPoolExhaustedError(Exception):
    """Every connection stayed busy for the wait timeout (the database is UNAVAILABLE to the caller)."""


class ReadPool:
    """`size` connections at most, opened on first use, reused last-in first-out."""

    def __init__(self, dsn: str, *, size: int = 4, connect_timeout: float = 10.0,
                 wait_timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._wait_timeout = wait_timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[asyncpg.Connection] = []
        self._closed = False

    async def _take(self) -> asyncpg.Connection:
        if self._slots.locked():
            # Every connection is busy: wait, bounded like the engine's pool timeout.
            try:
                async with asyncio.timeout(self._wait_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise ReadPoolExhaustedError("every read connection stayed busy") from None
        else:
            await self._slots.acquire()
        try:
            return self._idle.pop() if self._idle else await self._connect()
        except BaseException:
            self._slots.release()
            raise

    def _put(self, conn: asyncpg.Connection, error: BaseException | None = None) -> None:
        """Back to the pool, unless broken, cancelled mid-statement (its protocol state is unknown) or
        in a transaction; a statement the server refused leaves it in a known state."""
        if (error is not None and not isinstance(error, asyncpg.PostgresError)) or self._closed \
                or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
        else:
            self._idle.append(conn)
        self._slots.release()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """One connection for a few reads (each its own statement: no common snapshot)."""
        conn = await self._take()
        try:
            yield conn
        except BaseException as error:
            self._put(conn, error)
            raise
        self._put(conn)

    # The single reads skip the context manager: they are the hot path.
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return cast(list[asyncpg.Record], await self._read(asyncpg.Connection.fetch, query, args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return cast(asyncpg.Record | None, await self._read(asyncpg.Connection.fetchrow, query, args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._read(asyncpg.Connection.fetchval, query, args)

    async def _read(self, method: Callable[..., Awaitable[Any]], query: str, args: tuple[Any, ...]) -> Any:
        conn = await self._take()
        try:
            result = await method(conn, query, *args)
        except BaseException as error:
            self._put(conn, error)
            raise
        self._put(conn)
        return result

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self._dsn, timeout=self._connect_timeout)

    async def close(self) -> None:
        """Close the idle connections; one in use is closed when it comes back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, *_BROKEN):
                conn.terminate()
