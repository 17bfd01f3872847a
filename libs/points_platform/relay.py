"""The outbox relay: publishes committed outbox rows to NATS JetStream, in order per partition.

Exactly one relay works on a partition at a time, across every replica of the service: a pass
over a partition runs in one transaction that first takes `pg_try_advisory_xact_lock(<table>,
<partition>)`; a replica that cannot take it skips the partition for this pass. Holding the lock
from the read of the unpublished rows through their publishing to marking them published means no
two relays ever interleave their publishes of one partition, so the stream holds a partition's
events in `sequence` order, which is the order of a user's changes (outbox.py). Row locks with
SKIP LOCKED would let a second relay publish later rows while the first still holds earlier ones.

Each message carries `Nats-Msg-Id` = event id. A relay that published and then failed to mark the
rows (a crash, a lost connection) has them published again by the next pass; JetStream drops the
repeat within the stream's duplicate window (streams.py), and consumers de-duplicate by event id
beyond it. While NATS is down a pass fails at its first publish, keeps the rows it could not
publish, and `run` retries with capped exponential backoff: nothing is lost.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import sqlalchemy as sa
import structlog
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_platform.outbox import PUBLISH_ERRORS, PUBLISHED, Outbox

log = structlog.get_logger("points.relay")

MSG_ID_HEADER = "Nats-Msg-Id"


class PublishError(Exception):
    """NATS did not acknowledge a publish (down, no stream, timeout): the row stays unpublished."""


class Publisher(Protocol):
    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        """Store one message in JetStream, or raise PublishError."""
        ...


class JetStreamPublisher:
    """Publishes with an acknowledgement per message: the next one leaves only once the previous
    one is stored, so a failure never leaves a later event in the stream before an earlier one."""

    def __init__(self, nc: NatsClient, timeout_seconds: float = 5.0) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout_seconds)

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        # While reconnecting the client would buffer the request and wait its whole timeout.
        if not self._nc.is_connected:
            raise PublishError("not connected to NATS")
        try:
            await self._js.publish(subject, payload, headers={MSG_ID_HEADER: msg_id})
        except Exception as exc:  # any failure leaves the row for the next pass
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc


def backoff_seconds(failures: int, *, base: float = 0.1, cap: float = 30.0) -> float:
    """Delay before the next pass after `failures` failed passes in a row: doubling, capped."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 32)))


def _lock_namespace(table: sa.Table) -> int:
    """The advisory lock's first key: the table's name as a signed int4, so two outboxes in one
    database never share partition locks."""
    return zlib.crc32(table.name.encode()) - 2**31


class Relay:
    """Publishes one service's outbox; run one in every replica (they share the partitions)."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        idle_seconds: float = 0.2,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._publisher = publisher
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._max_backoff = max_backoff_seconds
        self._namespace = _lock_namespace(outbox.table)
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        """One pass: publish up to a batch of every partition with a backlog that no other relay
        holds, mark it published, refresh the backlog gauges; the number published. Raises
        PublishError after marking what was published before the failure."""
        async with self._engine.connect() as conn:
            backlog = await self._outbox.backlog(conn)
        failure: PublishError | None = None
        published = 0
        for partition in sorted(backlog.by_partition):
            try:
                published += await self._relay_partition(partition)
            except PublishError as exc:
                failure = exc
                break
        async with self._engine.connect() as conn:
            self._outbox.report(await self._outbox.backlog(conn))
        if failure is not None:
            raise failure
        return published

    async def _relay_partition(self, partition: int) -> int:
        t = self._outbox.table
        published: list[int] = []
        failure: PublishError | None = None
        async with self._engine.begin() as conn:
            if not await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(self._namespace, partition))):
                return 0  # another relay is publishing this partition
            rows = await conn.execute(
                sa.select(t.c.sequence, t.c.event_id, t.c.subject, t.c.payload)
                .where(t.c.partition == partition, t.c.published_time.is_(None))
                .order_by(t.c.sequence)
                .limit(self._batch_size)
            )
            for sequence, event_id, subject, payload in rows:
                try:
                    await self._publisher.publish(subject, payload, str(event_id))
                except PublishError as exc:
                    failure = exc
                    break
                published.append(sequence)
            await self._mark_published(conn, published)
        PUBLISHED.labels(self._outbox.service).inc(len(published))
        if failure is not None:
            PUBLISH_ERRORS.labels(self._outbox.service).inc()
            raise failure
        return len(published)

    async def _mark_published(self, conn: AsyncConnection, sequences: Sequence[int]) -> None:
        if sequences:
            t = self._outbox.table
            await conn.execute(
                sa.update(t).where(t.c.sequence.in_(sequences)).values(published_time=self._outbox.clock.now())
            )

    def wake(self) -> None:
        """Start the next pass now (e.g. after a commit that appended events)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until `stop` is set: at once while there is more, after `idle_seconds`
        when there was nothing, after a growing delay while publishing fails."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()  # a wake-up during the pass below is seen by the pause after it
            try:
                published = await self.relay_once()
                failures = 0
            except PublishError as exc:
                failures += 1
                log.warning("outbox_publish_failed", service=self._outbox.service, failures=failures, error=str(exc))
                published = 0
            except Exception:  # the database may be away; the loop must survive
                failures += 1
                log.exception("outbox_relay_failed", service=self._outbox.service, failures=failures)
                published = 0
            if failures:
                # A wake-up would not bring NATS back sooner: only `stop` cuts a backoff short.
                await self._pause(stop, backoff_seconds(failures, cap=self._max_backoff), wakeable=False)
            elif not published:
                await self._pause(stop, self._idle_seconds, wakeable=True)

    async def _pause(self, stop: asyncio.Event, seconds: float, *, wakeable: bool) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def prune_once(self, keep_seconds: float) -> int:
        """Delete rows published more than `keep_seconds` ago; the stream is the history."""
        cutoff = self._outbox.clock.now() - timedelta(seconds=keep_seconds)
        async with self._engine.begin() as conn:
            return await self._outbox.prune(conn, cutoff)
