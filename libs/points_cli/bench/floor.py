"""`points bench floor`: what PostgreSQL itself needs to store earned events, the yardstick for earning.

A plain asyncpg client writes only the rows an earned event needs, in one statement per batch of
100: an exactly-once event row (primary key user, event id), a ledger posting, and the user's
balance (one upsert per user per batch, in user order so hot users cannot deadlock), on 8
connections. It runs against the suite's own PostgreSQL, in a scratch database, in the same run
as the services' scenarios: earning's figures are reported as a ratio to it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from points_cli.bench.workload import Workload
from points_platform.db import asyncpg_dsn

DATABASE = "points_bench_floor"
BATCH = 100
CONNECTIONS = 8
POINTS_PER_EVENT = 5
WORKLOADS = ("fresh", "realistic")
# Batches of realistic users drawn before the clock starts: the draw is not what is measured.
PREDRAWN_BATCHES = 2000

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_walinspect;
CREATE TABLE IF NOT EXISTS floor_events (
    user_id text NOT NULL, event_id text NOT NULL, points bigint NOT NULL, PRIMARY KEY (user_id, event_id));
CREATE TABLE IF NOT EXISTS floor_postings (user_id text NOT NULL, event_id text NOT NULL, amount bigint NOT NULL);
CREATE TABLE IF NOT EXISTS floor_balances (user_id text PRIMARY KEY, points bigint NOT NULL CHECK (points >= 0));
TRUNCATE floor_events, floor_postings, floor_balances;
"""

STORE = """
WITH ev AS (
    INSERT INTO floor_events (user_id, event_id, points)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
    ON CONFLICT DO NOTHING
    RETURNING user_id, event_id, points
), posted AS (
    INSERT INTO floor_postings (user_id, event_id, amount) SELECT user_id, event_id, points FROM ev
)
INSERT INTO floor_balances AS b (user_id, points)
SELECT user_id, sum(points) FROM ev GROUP BY user_id ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE SET points = b.points + excluded.points
"""

# WAL is counted between two positions: bytes by their distance, records by reading the WAL
# itself (pg_walinspect, contrib since PostgreSQL 15). pg_stat_wal would lag: backends flush their
# statistics to it only about once a second. A position is where WAL is inserted now; reading it
# requires it flushed, which an asynchronous-commit server (the embedded test cluster) does only
# when its WAL writer gets to it, so one synchronous commit flushes everything before it. That
# commit must write WAL of its own: PostgreSQL commits a transaction that wrote none
# asynchronously even with synchronous_commit on (an xid alone is not enough), so it logs a
# transactional message (no consumer needs one; any wal_level).
WAL_POSITION = "SELECT pg_current_wal_insert_lsn()::text"
FLUSH_WAL = (
    "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'points-bench', ''); COMMIT"
)
WAL_BETWEEN = (
    "SELECT pg_wal_lsn_diff($2::text::pg_lsn, $1::text::pg_lsn),"
    " (SELECT sum(count) FROM pg_get_wal_stats($1::text::pg_lsn, $2::text::pg_lsn))"
)


@dataclass(frozen=True)
class FloorResult:
    workload: str
    events: int
    seconds: float
    events_per_second: float
    wal_records_per_event: float | None
    wal_bytes_per_event: float | None


def suite_database_url(state_dir: Path) -> str:
    """The embedded PostgreSQL of a running `points up` (its port from postmaster.pid)."""
    pid_file = state_dir / "pg" / "postmaster.pid"
    try:
        port = int(pid_file.read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        raise SystemExit(f"no running embedded PostgreSQL at {pid_file}: pass --database-url") from None
    password_file = state_dir / "postgres-password"
    password = f":{password_file.read_text().strip()}" if password_file.exists() else ""
    return f"postgresql://postgres{password}@127.0.0.1:{port}/postgres"


async def prepare(server_url: str) -> str:
    """Create the scratch database if needed; its URL."""
    admin = await asyncpg.connect(asyncpg_dsn(server_url, "postgres"))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    url = asyncpg_dsn(server_url, DATABASE)
    scratch = await asyncpg.connect(url)
    try:
        await scratch.execute(SCHEMA)
    finally:
        await scratch.close()
    return url


class _Batches:
    """Sorted (users, event ids) of 100 events each: fresh users, or Zipf users of the realistic mix."""

    def __init__(self, workload: str) -> None:
        self.run = uuid.uuid4().hex[:8]
        self._seq = itertools.count()
        self._drawn: list[list[str]] = []
        if workload == "realistic":
            mix = Workload(f"floor-{self.run}")
            self._drawn = [sorted(a.user for a in mix.activities(BATCH)) for _ in range(PREDRAWN_BATCHES)]

    def next(self) -> tuple[list[str], list[str]]:
        n = next(self._seq)
        first = n * BATCH
        if self._drawn:
            users = self._drawn[n % len(self._drawn)]
        else:
            users = [f"{self.run}-f{first + k:09d}" for k in range(BATCH)]
        return users, [f"{self.run}-e{first + k:09d}" for k in range(BATCH)]


Connection = asyncpg.Connection | PoolConnectionProxy


async def _position(conn: Connection) -> str:
    position = str(await conn.fetchval(WAL_POSITION))
    await conn.execute(FLUSH_WAL)
    return position


async def _between(conn: Connection, start: str, end: str) -> tuple[int, int]:
    """(records, bytes) of WAL from `start` to `end`."""
    row = await conn.fetchrow(WAL_BETWEEN, start, end)
    assert row is not None
    return int(row[1] or 0), int(row[0])


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url))


def wal_position(url: str) -> str:
    """The server's flushed WAL position now (`url`: a database with pg_walinspect, see prepare)."""

    async def read() -> str:
        conn = await _connect(url)
        try:
            return await _position(conn)
        finally:
            await conn.close()

    return asyncio.run(read())


def wal_per_event(url: str, start: str, events: int) -> tuple[float, float] | None:
    """(records, bytes) of WAL per event the whole server wrote since `start`."""
    if events <= 0:
        return None

    async def read() -> tuple[int, int]:
        conn = await _connect(url)
        try:
            return await _between(conn, start, await _position(conn))
        finally:
            await conn.close()

    records, bytes_ = asyncio.run(read())
    return records / events, bytes_ / events


async def measure(
    url: str, workload: str, *, duration: float | None = 10.0, batches: int | None = None,
    connections: int = CONNECTIONS,
) -> FloorResult:
    """Store events for `duration` seconds (or exactly `batches` batches) on `connections` connections."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    source = _Batches(workload)
    points = [POINTS_PER_EVENT] * BATCH
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=connections, max_size=connections)
    try:
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA)
            wal_start = await _position(conn)
        remaining = itertools.count(1)
        stored = 0
        start = time.perf_counter()
        stop_at = start + duration if duration is not None else float("inf")

        async def loop() -> None:
            nonlocal stored
            async with pool.acquire() as conn:
                statement = await conn.prepare(STORE)
                while time.perf_counter() < stop_at and (batches is None or next(remaining) <= batches):
                    users, events = source.next()
                    await statement.fetch(users, events, points)
                    stored += BATCH

        await asyncio.gather(*(loop() for _ in range(connections)))
        seconds = time.perf_counter() - start
        async with pool.acquire() as conn:
            records, bytes_ = await _between(conn, wal_start, await _position(conn))
    finally:
        await pool.close()
    return FloorResult(
        workload,
        stored,
        seconds,
        stored / seconds if seconds else 0.0,
        records / stored if stored else None,
        bytes_ / stored if stored else None,
    )


async def stored_totals(url: str) -> tuple[int, int, int, int]:
    """(event rows, postings, sum of postings, sum of balances): what a run left behind."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM floor_events), (SELECT count(*) FROM floor_postings),"
            " (SELECT coalesce(sum(amount), 0) FROM floor_postings),"
            " (SELECT coalesce(sum(points), 0) FROM floor_balances)"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def format_floor(results: list[FloorResult]) -> str:
    lines = [f"{'floor':<24}{'events/s':>11}{'WAL rec/event':>15}{'WAL bytes/event':>17}"]
    for r in results:
        records = f"{r.wal_records_per_event:.2f}" if r.wal_records_per_event is not None else "-"
        bytes_ = f"{r.wal_bytes_per_event:.0f}" if r.wal_bytes_per_event is not None else "-"
        lines.append(f"{'floor_' + r.workload:<24}{r.events_per_second:>11.0f}{records:>15}{bytes_:>17}")
    return "\n".join(lines)
