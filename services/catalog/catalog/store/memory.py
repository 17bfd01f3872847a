"""Items, prices, regions and campaigns kept in this process's memory, never stale once a change is acknowledged.

How (docs/catalog.md, Reads from memory): every change bumps the catalog-wide version and sends
`NOTIFY catalog_changed` in its own transaction (triggers, migration 0008). Each process listens on
a connection of its own, drops all it remembers when a newer version is announced, and then records
the version it has seen in its `catalog_readers` row, together with a lease. The process that made
the change answers its caller only after every reader with a live lease has seen that version
(`settled`). So once a change is acknowledged, no process still remembers what it replaced:

- a reader that has not dropped its memory yet holds up the acknowledgement;
- a reader that cannot be reached (crashed, connection lost, partitioned) stops serving from memory
  when its lease runs out, measured on its own monotonic clock from before the renewal was sent, so
  no later than the lease the database records, after which a writer stops waiting for it;
- a reader that lost its connection, or whose lease ran out, drops everything before it serves from
  memory again: notifications may have been missed meanwhile.

A read that loads from the database while a notification arrives does not keep what it loaded
(the generation moved); while the memory is not live every read goes to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.store.hot import driver_of
from catalog.use_cases.ports import ItemReads, Remembered

log = structlog.get_logger("catalog")

CHANGED = "catalog_changed"
ACKED = "catalog_acked"
_LIMIT = 100_000
# How often a writer waiting for readers looks again without a notification (a reader's lease
# running out sends none).
_RECHECK_SECONDS = 0.1

READ_VERSION = "SELECT version FROM catalog_version WHERE id = 1"
# $1 reader_id, $2 the version seen, $3 lease seconds. Announced so waiting writers look again.
REGISTER = """
WITH seen AS (
  INSERT INTO catalog_readers (reader_id, seen_version, lease_until)
  VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
  ON CONFLICT (reader_id) DO UPDATE SET seen_version = excluded.seen_version, lease_until = excluded.lease_until
  RETURNING seen_version
)
SELECT pg_notify('catalog_acked', seen_version::text) FROM seen
"""
# Rows of processes gone for long (their leases ran out long ago).
FORGET_GONE = "DELETE FROM catalog_readers WHERE lease_until < clock_timestamp() - interval '1 hour'"
DEREGISTER = "DELETE FROM catalog_readers WHERE reader_id = $1"
# $1 version: readers with a live lease that have not dropped what that version changed.
BEHIND = "SELECT count(*) FROM catalog_readers WHERE seen_version < $1 AND lease_until > clock_timestamp()"

Retry = Callable[[], Awaitable[None]]


async def _pause() -> None:
    await asyncio.sleep(1.0)  # between reconnection attempts to the database


class NotifiedMemory:
    """`use_cases.ports.CatalogMemory`, kept current by `follow` (a background job)."""

    def __init__(self, engine: AsyncEngine, dsn: str, *, lease_seconds: float, retry: Retry = _pause) -> None:
        self.reader_id = f"catalog-{uuid.uuid4().hex[:16]}"
        self._engine = engine
        self._dsn = dsn
        self._lease = lease_seconds
        self._retry = retry
        self._entries: dict[str, Remembered] = {}
        self._generation = 0
        self._seen = 0
        self._live_until = 0.0  # time.monotonic(): serve from memory only before it
        self._to_ack = asyncio.Event()
        self._acked = asyncio.Event()  # replaced on every acknowledgement: waiters hold the old one

    # -- reads ---------------------------------------------------------------------------------

    def is_live(self) -> bool:
        return time.monotonic() < self._live_until

    def recall(self, item_id: str) -> Remembered | None:
        if not self.is_live():
            return None
        return self._entries.get(item_id)

    async def load(self, item_id: str, reads: ItemReads) -> Remembered:
        generation = self._generation
        found = await reads.read_item(item_id)
        if found is None:
            remembered = Remembered(None, ())
        else:
            item, links = found
            remembered = Remembered(item, tuple(await reads.campaigns(item_id, links)))
        if generation == self._generation and self.is_live():
            if len(self._entries) >= _LIMIT:
                self._entries.clear()
            self._entries[item_id] = remembered
        return remembered

    # -- writers -------------------------------------------------------------------------------

    async def settled(self) -> None:
        async with self._engine.connect() as conn:
            driver = await driver_of(conn)
            version = await driver.fetchval(READ_VERSION)
            while True:
                acked = self._acked
                if not await driver.fetchval(BEHIND, version):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(acked.wait(), _RECHECK_SECONDS)

    # -- following the changes -----------------------------------------------------------------

    async def follow(self) -> None:
        """Background job: listen for changes, acknowledge them, renew the lease; reconnect when lost."""
        while True:
            try:
                await self._listen()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("catalog_memory_lost", reader_id=self.reader_id, error=repr(error))
            finally:
                self._forget()
            await self._retry()

    def _forget(self) -> None:
        self._live_until = 0.0
        self._entries.clear()
        self._generation += 1

    def _on_changed(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        version = int(str(payload))
        if version > self._seen:
            self._entries.clear()
            self._generation += 1
            self._seen = version
            self._to_ack.set()

    def _on_acked(self, _conn: object, _pid: int, _channel: str, _payload: object) -> None:
        acked, self._acked = self._acked, asyncio.Event()
        acked.set()

    async def _listen(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": self.reader_id}
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(CHANGED, self._on_changed)
            await conn.add_listener(ACKED, self._on_acked)
            await conn.execute(FORGET_GONE)
            # Listening before reading the version: no change after it can go unannounced.
            self._forget()
            self._seen = int(await conn.fetchval(READ_VERSION))
            log.info("catalog_memory_following", reader_id=self.reader_id, version=self._seen)
            while True:
                await self._renew(conn)
                await _first_of(self._to_ack, lost, timeout=self._lease / 3)
                if lost.is_set() or conn.is_closed():
                    raise ConnectionError("the listening connection was closed")
        finally:
            if not conn.is_closed():
                with contextlib.suppress(Exception):  # best effort: a lease ends by itself
                    await asyncio.wait_for(conn.execute(DEREGISTER, self.reader_id), 2)
                conn.terminate()

    async def _renew(self, conn: asyncpg.Connection) -> None:
        """Record the version seen and extend the lease; a lease that ran out meanwhile starts afresh."""
        self._to_ack.clear()
        sent = time.monotonic()
        if sent >= self._live_until:
            self._forget()
        await conn.fetchval(REGISTER, self.reader_id, self._seen, self._lease)
        self._live_until = sent + self._lease


async def _first_of(first: asyncio.Event, second: asyncio.Event, *, timeout: float) -> None:
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
