"""The unit of work against a real PostgreSQL: commit or roll back as a whole, the raw asyncpg
connection inside the same transaction, and conflicts retried with a bounded, jittered backoff
(serialization failures and deadlocks forced by two real transactions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.db import create_engine
from points_platform.errors import Aborted
from points_platform.unit_of_work import RaceLost, RetryPolicy, Transaction, Transactions, retry
from tests.conftest import NewDatabase

metadata = MetaData()
counters = Table("counters", metadata, Column("name", Text, primary_key=True), Column("value", Integer))


class Sleeps:
    """The injected sleep: records each backoff, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture(scope="module")
async def engine(new_database: NewDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await new_database("uow"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def _reset(engine: AsyncEngine, *names: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(counters.delete())
        for name in names:
            await conn.execute(counters.insert().values(name=name, value=0))


async def _values(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {r.name: r.value for r in await conn.execute(select(counters))}


async def test_commits_when_the_block_ends_and_rolls_back_when_it_raises(engine: AsyncEngine) -> None:
    await _reset(engine)
    transactions = Transactions(engine)
    async with transactions.begin() as tx:
        await tx.connection.execute(counters.insert().values(name="kept", value=1))
    with pytest.raises(LookupError):
        async with transactions.begin() as tx:
            await tx.connection.execute(counters.insert().values(name="dropped", value=1))
            raise LookupError("the use case refused")
    assert await _values(engine) == {"kept": 1}


async def test_the_raw_connection_is_inside_the_same_transaction(engine: AsyncEngine) -> None:
    await _reset(engine)
    transactions = Transactions(engine)
    with pytest.raises(LookupError):
        async with transactions.begin() as tx:
            # The raw connection first, before SQLAlchemy sent anything: it must not autocommit.
            driver = await tx.driver()
            await driver.execute("INSERT INTO counters (name, value) VALUES ('raw', 1)")
            seen = (await tx.connection.execute(select(counters.c.value).where(counters.c.name == "raw"))).scalar()
            assert seen == 1  # one transaction: SQLAlchemy sees the raw write
            assert await tx.driver() is driver
            raise LookupError("roll back")
    assert await _values(engine) == {}  # rolled back with the transaction


@pytest.mark.parametrize("through", ["sqlalchemy", "driver"])
async def test_a_serialization_failure_is_run_again(engine: AsyncEngine, through: str) -> None:
    """Two transactions update one row; the first, REPEATABLE READ, took its snapshot before the
    second committed, so its update fails 40001 and the unit of work runs it again: whether the
    update went through SQLAlchemy or the raw asyncpg connection (a hot statement)."""
    await _reset(engine, "c")
    sleeps = Sleeps()
    transactions = Transactions(engine, isolation_level="REPEATABLE READ", retry_policy=RetryPolicy(sleep=sleeps))
    snapshot_taken, other_committed = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def work(tx: Transaction) -> int:
        calls.append(1)
        before = (await tx.connection.execute(select(counters.c.value).where(counters.c.name == "c"))).scalar_one()
        if len(calls) == 1:
            snapshot_taken.set()
            await other_committed.wait()
        if through == "driver":
            await (await tx.driver()).execute("UPDATE counters SET value = value + 1 WHERE name = 'c'")
        else:
            await tx.connection.execute(
                update(counters).where(counters.c.name == "c").values(value=counters.c.value + 1))
        return int(before)

    async def other() -> None:
        await snapshot_taken.wait()
        async with engine.begin() as conn:
            await conn.execute(update(counters).where(counters.c.name == "c").values(value=counters.c.value + 1))
        other_committed.set()

    seen_before, _ = await asyncio.gather(transactions.run(work), other())
    assert len(calls) == 2 and seen_before == 1  # the second attempt saw the other's commit
    assert await _values(engine) == {"c": 2}  # both increments, neither lost
    assert len(sleeps.delays) == 1 and 0 <= sleeps.delays[0] <= RetryPolicy().max_delay


async def test_a_deadlock_is_run_again(engine: AsyncEngine) -> None:
    """Two transactions lock two rows in opposite orders; PostgreSQL ends one with 40P01 and the
    unit of work runs it again after the other committed."""
    await _reset(engine, "a", "b")
    sleeps = Sleeps()
    transactions = Transactions(engine, retry_policy=RetryPolicy(sleep=sleeps))
    both_hold_one = asyncio.Barrier(2)
    attempts: list[str] = []

    def transfer(first: str, second: str) -> Callable[[Transaction], Awaitable[None]]:
        async def work(tx: Transaction) -> None:
            attempts.append(first)
            await tx.connection.execute(text("SET LOCAL deadlock_timeout = '20ms'"))
            for name in (first, second):
                await tx.connection.execute(
                    update(counters).where(counters.c.name == name).values(value=counters.c.value + 1))
                if name == first and attempts.count(first) == 1:
                    await both_hold_one.wait()
        return work

    await asyncio.gather(transactions.run(transfer("a", "b")), transactions.run(transfer("b", "a")))
    assert len(attempts) == 3  # one of the two ran twice
    assert await _values(engine) == {"a": 2, "b": 2}
    assert len(sleeps.delays) == 1


async def test_backoff_is_bounded_and_contention_beyond_it_is_aborted() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05, sleep=sleeps, jitter=lambda: 1.0)

    class ConflictError(Exception):
        sqlstate = "40001"

    async def always_conflicts() -> None:
        raise DBAPIError("UPDATE", None, ConflictError())

    with pytest.raises(Aborted) as caught:
        await retry(always_conflicts, policy)
    assert caught.value.reason == "TRANSACTION_CONFLICT"
    assert sleeps.delays == [0.02, 0.04, 0.05, 0.05, 0.05]  # doubling, capped, one fewer than attempts

    async def always_loses() -> None:
        raise RaceLost("k")

    with pytest.raises(Aborted) as caught:
        await retry(always_loses, policy)
    assert caught.value.reason == "CONCURRENT_REQUEST"
    assert len(sleeps.delays) == 5  # a lost race is run again at once


async def test_a_connection_returned_with_a_transaction_open_is_not_handed_on(new_database: NewDatabase) -> None:
    """A transaction SQLAlchemy does not know of (BEGIN sent on the raw connection, as a call
    cancelled mid-BEGIN leaves it) survives the pool's reset-on-return; checkout must drop it."""
    engine = create_engine(await new_database("leaked"), pool_size=1)
    try:
        async with engine.connect() as conn:
            leaked = (await conn.get_raw_connection()).driver_connection
            assert leaked is not None
            await leaked.execute("BEGIN")
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            assert driver is not leaked and not driver.is_in_transaction()
            assert leaked.is_closed()
    finally:
        await engine.dispose()
