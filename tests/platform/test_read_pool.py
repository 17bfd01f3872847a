"""The read pool against a real PostgreSQL: reads outside any transaction, connections reused, a
connection the server killed dropped and replaced, a statement error keeping its connection, a
cancelled read dropping its connection, and a pool whose connections all stay busy refusing with
an error the services map to UNAVAILABLE (a held advisory lock keeps them busy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from points_platform.db import asyncpg_dsn, is_database_unavailable
from points_platform.read_pool import ReadPool, ReadPoolExhaustedError
from tests.conftest import NewDatabase
from tests.support.wait import eventually

BACKEND = "SELECT pg_backend_pid()"


@pytest.fixture(scope="module")
async def dsn(new_database: NewDatabase) -> str:
    return asyncpg_dsn(await new_database("readpool"))


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[ReadPool]:
    pool = ReadPool(dsn, size=2, wait_timeout=0.5)
    yield pool
    await pool.close()


async def test_reads_run_outside_a_transaction_and_reuse_the_connection(pool: ReadPool) -> None:
    first = await pool.fetchval(BACKEND)
    assert await pool.fetchval(BACKEND) == first  # last in, first out: the same backend again
    async with pool.connection() as conn:  # autocommit: no transaction block around a read
        assert await conn.fetchval("SELECT 1") == 1
        assert not conn.is_in_transaction()
    assert [tuple(r) for r in await pool.fetch("SELECT g FROM generate_series(1, 3) g")] == [(1,), (2,), (3,)]
    row = await pool.fetchrow("SELECT 1, 'a'")
    assert row is not None and tuple(row) == (1, "a")


async def test_a_statement_error_keeps_the_connection(pool: ReadPool) -> None:
    before = await pool.fetchval(BACKEND)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await pool.fetchval("SELECT 1 / 0")
    assert await pool.fetchval(BACKEND) == before


async def test_a_connection_the_server_killed_is_replaced(pool: ReadPool, dsn: str) -> None:
    killed = await pool.fetchval(BACKEND)
    admin = await asyncpg.connect(dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", killed)
        await eventually(lambda: _gone(admin, killed), what="the backend to exit")
    finally:
        await admin.close()
    with pytest.raises(Exception) as failed:
        await pool.fetchval(BACKEND)
    assert is_database_unavailable(failed.value)  # UNAVAILABLE to the caller, not INTERNAL
    assert await pool.fetchval(BACKEND) not in (None, killed)  # a fresh connection


async def test_a_cancelled_read_drops_its_connection(pool: ReadPool, dsn: str) -> None:
    blocker = await asyncpg.connect(dsn)
    try:
        await blocker.execute("SELECT pg_advisory_lock(42)")
        waiting = asyncio.create_task(pool.fetchval("SELECT pg_advisory_lock_shared(42), pg_backend_pid()"))
        await eventually(lambda: _waiting_for_lock(blocker), what="the read to wait on the lock")
        stuck = await blocker.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted LIMIT 1")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        await blocker.execute("SELECT pg_advisory_unlock_all()")
        await blocker.close()
    # Its protocol state was unknown, so it was not handed on: the next read is on another backend.
    assert await pool.fetchval(BACKEND) != stuck


async def test_all_connections_busy_is_unavailable_after_the_wait(pool: ReadPool, dsn: str) -> None:
    blocker = await asyncpg.connect(dsn)
    try:
        await blocker.execute("SELECT pg_advisory_lock(43)")
        held = [asyncio.create_task(pool.fetchval("SELECT pg_advisory_lock_shared(43)")) for _ in range(2)]
        await eventually(lambda: _waiting_for_lock(blocker, count=2), what="both reads to wait on the lock")
        with pytest.raises(ReadPoolExhaustedError) as exhausted:
            await pool.fetchval("SELECT 1")
        assert is_database_unavailable(exhausted.value)
        await blocker.execute("SELECT pg_advisory_unlock(43)")
        await asyncio.gather(*held)
    finally:
        await blocker.close()
    assert await pool.fetchval("SELECT 1") == 1


async def test_closed_pool_closes_connections_coming_back(dsn: str) -> None:
    pool = ReadPool(dsn, size=1)
    async with pool.connection() as conn:
        await pool.close()
        assert await conn.fetchval("SELECT 1") == 1
    assert conn.is_closed()


async def _gone(admin: asyncpg.Connection, pid: int) -> bool:
    return not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def _waiting_for_lock(conn: asyncpg.Connection, count: int = 1) -> bool:
    waiting = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return bool(waiting >= count)
