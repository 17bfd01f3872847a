"""Waiting for a condition, never for a duration: the deadline only bounds a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Generous: a slow or loaded machine may take long; a passing test never waits this long.
HANG_SECONDS = 60.0
# Pacing between polls of a condition (not an assumption about how long anything takes).
POLL_SECONDS = 0.05


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = HANG_SECONDS, what: str = "") -> None:
    """Poll `check` until it holds; fail if it does not within `seconds` (a hang)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"condition not reached in {seconds} s: {what}"
        await asyncio.sleep(POLL_SECONDS)  # pacing between polls of the condition


async def blocked_on_locks(engine: AsyncEngine, count: int) -> None:
    """Wait until `count` sessions of `engine`'s database wait on a lock (a race the test holds open)."""

    async def waiting() -> bool:
        async with engine.connect() as conn:
            waiters: int | None = await conn.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ))  # fmt: skip
            return waiters == count

    await eventually(waiting, what=f"{count} sessions waiting on a lock")


@asynccontextmanager
async def commits_refused(engine: AsyncEngine, table: str, condition: str) -> AsyncIterator[None]:
    """While inside: a transaction that inserted a row of `table` matching `condition` (SQL over
    `NEW`) fails at its commit (a deferred constraint trigger), so everything it wrote rolls back."""
    async with engine.begin() as conn:
        await conn.execute(text(
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {condition} THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$"))
        await conn.execute(text(
            f"CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()"))  # fmt: skip
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER refuse_at_commit ON {table}"))
            await conn.execute(text("DROP FUNCTION refuse_at_commit()"))


async def is_serving(port: int, host: str = "127.0.0.1") -> bool:
    """One health Check: SERVING, or not (yet)."""
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        # types-grpcio-health-checking declares no methods on HealthStub.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def wait_serving(port: int, seconds: float = HANG_SECONDS, alive: Callable[[], bool] = lambda: True) -> None:
    """Until the server on `port` answers SERVING; `alive` (e.g. a child process' poll) fails fast."""

    async def serving() -> bool:
        assert alive(), f"the server on port {port} exited before serving"
        return await is_serving(port)

    await eventually(serving, seconds, f"port {port} serving")


class Tally:
    """A count a test can wait on (answers received, say): `reached(n)` returns once `add()` has been
    called n times in all, woken by an event the n-th call sets, not by polling."""

    def __init__(self) -> None:
        self.count = 0
        self._waiting: list[tuple[int, asyncio.Event]] = []

    def add(self) -> None:
        self.count += 1
        for target, event in self._waiting:
            if self.count >= target:
                event.set()

    async def reached(self, n: int, seconds: float = HANG_SECONDS) -> None:
        if self.count >= n:
            return
        waiter = (n, asyncio.Event())
        self._waiting.append(waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), seconds)
        except TimeoutError:
            raise AssertionError(f"the count stopped at {self.count}, short of {n}, for {seconds} s") from None
        finally:
            self._waiting.remove(waiter)
