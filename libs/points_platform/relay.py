"""The outbox relay: publishes committed outbox rows to NATS JetStream, in order per partition.

Exactly one relay works on a partition at a time, across every replica of the service: a pass runs
in one transaction that first takes `pg_try_advisory_xact_lock(<table>, <partition>)` of every
partition with a backlog; a replica that cannot take one skips that partition for this pass. Holding the lock
from the read of the unpublished rows through their publishing to marking them published means no
two relays ever interleave their publishes of one partition, so the stream holds a partition's
events in `sequence` order, which is the order of a user's changes (outbox.py). Row locks with
SKIP LOCKED would let a second relay publish later rows while the first still holds earlier ones.

Each message carries `Nats-Msg-Id` = event id. A relay that published and then failed to mark the
rows (a crash, a lost connection) has them published again by the next pass; JetStream drops the
repeat within the stream's duplicate window (streams.py), and consumers de-duplicate by event id
beyond it. While NATS is down a pass fails at its first publish, keeps the rows it could not
publish, and `run` retries with capped exponential backoff: nothing is lost.

`start_relays` is the one call a service's composition root makes: it runs the relay of the
process in the background (connecting to NATS and ensuring the stream first, for as long as that
takes: a service starts and serves while NATS is away), prunes old published rows, and stops on
`close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
import structlog
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_platform.config import PlatformSettings
from points_platform.jetstream import Retention, connect, ensure_streams
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


def _pending_rows(table: sa.Table) -> sa.TextClause:
    """:partitions the relay may take, :ns the lock namespace, :batch rows per partition at most: the
    unpublished rows of each partition whose advisory lock this transaction took (others are another
    relay's for now), in publish order. The locks are taken first (a materialized CTE: once per
    partition), then each partition's rows through the partial index of unpublished rows."""
    return sa.text(f"""
WITH mine AS MATERIALIZED (
  SELECT p FROM unnest(CAST(:partitions AS int[])) AS p WHERE pg_try_advisory_xact_lock(:ns, p)
)
SELECT o.sequence, o.event_id, o.subject, o.payload
FROM mine CROSS JOIN LATERAL (
  SELECT t.sequence, t.event_id, t.subject, t.payload FROM "{table.name}" t
  WHERE t.partition = mine.p AND t.published_time IS NULL ORDER BY t.sequence LIMIT :batch
) o
ORDER BY mine.p, o.sequence
""")


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
        linger_seconds: float = 0.05,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._publisher = publisher
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._linger = linger_seconds
        self._max_backoff = max_backoff_seconds
        self._namespace = _lock_namespace(outbox.table)
        self._pending = _pending_rows(outbox.table)
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        """One pass: publish up to a batch of every partition with a backlog that no other relay
        holds, mark it published, refresh the backlog gauges; the number published. Raises
        PublishError after marking what was published before the failure."""
        async with self._engine.connect() as conn:
            backlog = await self._outbox.backlog(conn)
        published, failure = await self._relay_partitions(sorted(backlog.by_partition)) \
            if backlog.by_partition else (0, None)
        async with self._engine.connect() as conn:
            self._outbox.report(await self._outbox.backlog(conn))
        if failure is not None:
            raise failure
        return published

    async def _relay_partitions(self, partitions: list[int]) -> tuple[int, PublishError | None]:
        """Every partition of `partitions` no other relay holds, in one transaction: their locks and
        rows in one statement, the rows published partition by partition in `sequence` order, then
        marked in one statement. A publish failure ends the pass: what was published before it is
        marked, the rest stays for the next pass."""
        published: list[int] = []
        failure: PublishError | None = None
        async with self._engine.begin() as conn:
            rows = await conn.execute(self._pending, {"ns": self._namespace, "partitions": partitions,
                                                      "batch": self._batch_size})
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
        return len(published), failure

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
        """Pass after pass until `stop` is set: at once while there is more (but no sooner than
        `linger_seconds` after the last pass began), after `idle_seconds` or a wake-up when there was
        nothing, after a growing delay while publishing fails."""
        failures = 0
        clock = asyncio.get_running_loop()
        last_pass = -self._linger
        while not stop.is_set():
            # Passes start at most every `linger` seconds: every commit that appends events wakes the
            # relay, and a pass per wake-up would pay its statements (backlog, a transaction per
            # partition) for one or two events each. Events wait at most that much longer.
            gap = self._linger - (clock.time() - last_pass)
            if gap > 0:
                await self._pause(stop, gap, wakeable=False)
                if stop.is_set():
                    break
            last_pass = clock.time()
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


# How often published rows are pruned, on the outbox's clock.
PRUNE_EVERY_SECONDS = 300.0


class RelayJob:
    """A service process's relay running in the background (from `start_relays`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        *,
        nats_url: str,
        keep_published_seconds: float,
        retention: Retention,
        idle_seconds: float,
        max_backoff_seconds: float,
        reconnect_wait_seconds: float,
        poll_seconds: float,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._url = nats_url
        self._keep_seconds = keep_published_seconds
        self._retention = retention
        self._idle_seconds = idle_seconds
        self._max_backoff = max_backoff_seconds
        self._reconnect_wait = reconnect_wait_seconds
        self._poll_seconds = poll_seconds
        self._stop = asyncio.Event()
        self._relay: Relay | None = None
        self._nc: NatsClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def is_running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def start(self) -> None:
        service = self._outbox.service
        self._tasks = [
            asyncio.create_task(self._publish(), name=f"{service}-outbox-relay"),
            asyncio.create_task(self._prune(), name=f"{service}-outbox-prune"),
        ]

    def wake(self) -> None:
        """Start the next pass now (e.g. right after a commit that appended events)."""
        if self._relay is not None:
            self._relay.wake()

    async def close(self, timeout_seconds: float = 10.0) -> None:
        """Finish the pass under way (its rows are marked), stop, close the NATS connection."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout_seconds)
            for task in pending:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._nc is not None:
            await self._nc.close()

    async def _publish(self) -> None:
        nc = await self._connected()
        if nc is None:
            return
        self._nc = nc
        if not await self._streams_ensured(nc):
            return
        self._relay = Relay(
            self._engine,
            self._outbox,
            JetStreamPublisher(nc),
            idle_seconds=self._idle_seconds,
            max_backoff_seconds=self._max_backoff,
        )
        log.info("outbox_relay_started", service=self._outbox.service)
        await self._relay.run(self._stop)

    async def _connected(self) -> NatsClient | None:
        """The NATS client once connected, or None when stopped first. The client retries an
        unreachable server for ever; anything else (a bad URL) is retried here with backoff.
        Meanwhile the backlog gauges stay current, so the backlog's age alert sees events piling
        up while NATS is away."""
        failures = 0
        while not self._stop.is_set():
            connecting = asyncio.create_task(
                connect(self._url, name=f"points-{self._outbox.service}-relay",
                        reconnect_wait_seconds=self._reconnect_wait)
            )  # fmt: skip
            while not connecting.done() and not self._stop.is_set():
                await self._report_backlog()
                await _until(self._stop, self._poll_seconds, connecting)
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
                return None
            try:
                return connecting.result()
            except Exception as exc:  # e.g. a URL the client refuses; retried like an outage
                failures += 1
                log.warning("nats_connect_failed", service=self._outbox.service, failures=failures,
                            error=f"{type(exc).__name__}: {exc}", exc_info=True)
                await _until(self._stop, backoff_seconds(failures, cap=self._max_backoff))
        return None

    async def _streams_ensured(self, nc: NatsClient) -> bool:
        """Create or update the service's stream, retrying with backoff (JetStream may not be
        ready yet); False when stopped first."""
        failures = 0
        while not self._stop.is_set():
            try:
                await ensure_streams(nc.jetstream(), [self._outbox.service], self._retention)
                return True
            except Exception as exc:  # any failure: NATS away, JetStream off; retried
                failures += 1
                log.warning("outbox_stream_not_ensured", service=self._outbox.service, failures=failures,
                            error=f"{type(exc).__name__}: {exc}", exc_info=True)
                await self._report_backlog()
                await _until(self._stop, backoff_seconds(failures, cap=self._max_backoff))
        return False

    async def _report_backlog(self) -> None:
        try:
            async with self._engine.connect() as conn:
                self._outbox.report(await self._outbox.backlog(conn))
        except Exception:  # the database may be away too; the next report will tell
            log.warning("outbox_backlog_unknown", service=self._outbox.service, exc_info=True)

    async def _prune(self) -> None:
        """Delete rows published more than `keep_published_seconds` ago, every
        PRUNE_EVERY_SECONDS of the outbox's clock (checked every `poll_seconds`)."""
        clock = self._outbox.clock
        due: datetime = clock.now()
        while not self._stop.is_set():
            if clock.now() >= due:
                cutoff = clock.now() - timedelta(seconds=self._keep_seconds)
                try:
                    async with self._engine.begin() as conn:
                        pruned = await self._outbox.prune(conn, cutoff)
                    if pruned:
                        log.info("outbox_pruned", service=self._outbox.service, rows=pruned)
                except Exception:  # the database may be away; the next round retries
                    log.warning("outbox_prune_failed", service=self._outbox.service, exc_info=True)
                due = clock.now() + timedelta(seconds=PRUNE_EVERY_SECONDS)
            await _until(self._stop, self._poll_seconds)


async def _until(stop: asyncio.Event, seconds: float, *others: Awaitable[object]) -> None:
    """Wait until `stop` is set, one of `others` completes, or `seconds` pass."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopping, *map(asyncio.ensure_future, others)], timeout=seconds,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()


def start_relays(
    engine: AsyncEngine,
    settings: PlatformSettings,
    outbox: Outbox,
    *,
    retention: Retention | None = None,
    idle_seconds: float = 0.2,
    max_backoff_seconds: float = 30.0,
    reconnect_wait_seconds: float = 2.0,
    poll_seconds: float = 1.0,
) -> RelayJob:
    """Run `outbox`'s relay in the background of this process (call from a running event loop);
    `close()` stops it. Without `settings.nats_url` nothing runs: events wait in the outbox until a
    process with a URL publishes them. Every replica runs one; they share the partitions."""
    job = RelayJob(
        engine,
        outbox,
        nats_url=settings.nats_url,
        keep_published_seconds=settings.outbox_keep_published_seconds,
        retention=retention or Retention(),
        idle_seconds=idle_seconds,
        max_backoff_seconds=max_backoff_seconds,
        reconnect_wait_seconds=reconnect_wait_seconds,
        poll_seconds=poll_seconds,
    )
    if settings.nats_url:
        job.start()
    else:
        log.info("outbox_relay_off", service=outbox.service, reason="no NATS URL configured")
    return job
