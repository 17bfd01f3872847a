"""Transactional outbox: events are rows written in the same transaction as the change they
describe, so an event exists if and only if its change committed. `Relay` (relay.py) publishes
the rows to NATS JetStream afterwards.

A service adds `outbox_table(metadata)` to its tables (and a migration calling the frozen
`migrations.create_outbox_table_v1`), builds one `Outbox` in its composition root, and calls
`outbox.append(conn, events)` on the connection of the transaction making the change, after
taking the locks that order the change (the user's balance row, the saga row): a later change of
the same user then gets a higher `sequence`, which is the order the relay publishes a partition in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection

from points.events.v1 import envelope_pb2
from points_platform.clock import Clock
from points_platform.events import EVENT_TYPES, partition_key, partition_of, subject_for
from points_platform.migrations import outbox_columns_v1

BACKLOG = Gauge("points_outbox_backlog", "Outbox events committed but not yet published to NATS", ["service"])
OLDEST_AGE = Gauge(
    "points_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event (0 when none)", ["service"]
)
PUBLISHED = Counter("points_outbox_published_total", "Outbox events published to NATS JetStream", ["service"])
PUBLISH_ERRORS = Counter(
    "points_outbox_publish_errors_total", "Failed publishes to NATS JetStream (retried with backoff)", ["service"]
)


def outbox_table(metadata: sa.MetaData, name: str = "outbox") -> sa.Table:
    """The outbox table in `metadata`. `sequence` is the publish order within a partition; the
    partial index keeps the relay's scan over unpublished rows only, however many published ones
    are kept."""
    table = sa.Table(name, metadata, *outbox_columns_v1())
    sa.Index(
        f"{name}_unpublished",
        table.c.partition,
        table.c.sequence,
        postgresql_where=table.c.published_time.is_(None),
    )
    sa.Index(f"{name}_published", table.c.published_time, postgresql_where=table.c.published_time.isnot(None))
    return table


@dataclass(frozen=True)
class Backlog:
    """Unpublished events: how many, per partition, and when the oldest was written."""

    by_partition: dict[int, int]
    oldest_created: datetime | None

    @property
    def total(self) -> int:
        return sum(self.by_partition.values())


@dataclass(frozen=True)
class Outbox:
    """One service's outbox: its table, its name in subjects, its partition count."""

    table: sa.Table
    service: str
    partitions: int
    clock: Clock

    async def append(self, conn: AsyncConnection, events: Sequence[envelope_pb2.Event]) -> None:
        """Write `events` in the caller's transaction (committed or rolled back with it)."""
        if not events:
            return
        now = self.clock.now()
        rows = []
        for event in events:
            if event.event_type not in EVENT_TYPES or event.WhichOneof("payload") != event.event_type:
                raise ValueError(f"event {event.event_id}: event_type {event.event_type!r} does not name its payload")
            partition = partition_of(partition_key(event), self.partitions)
            rows.append(
                {
                    "event_id": event.event_id,
                    "subject": subject_for(self.service, event.event_type, partition),
                    "partition": partition,
                    "payload": event.SerializeToString(),
                    "created_time": now,
                }
            )
        await conn.execute(sa.insert(self.table), rows)

    async def backlog(self, conn: AsyncConnection) -> Backlog:
        t = self.table
        result = await conn.execute(
            sa.select(t.c.partition, sa.func.count(), sa.func.min(t.c.created_time))
            .where(t.c.published_time.is_(None))
            .group_by(t.c.partition)
        )
        counts: dict[int, int] = {}
        oldest: datetime | None = None
        for partition, count, created in result:
            counts[partition] = count
            oldest = created if oldest is None else min(oldest, created)
        return Backlog(counts, oldest)

    def report(self, backlog: Backlog) -> None:
        """Set the backlog gauges of this service."""
        BACKLOG.labels(self.service).set(backlog.total)
        age = 0.0 if backlog.oldest_created is None else (self.clock.now() - backlog.oldest_created).total_seconds()
        OLDEST_AGE.labels(self.service).set(max(age, 0.0))

    async def prune(self, conn: AsyncConnection, published_before: datetime) -> int:
        """Delete rows published before `published_before` (the broker keeps the events)."""
        t = self.table
        result = await conn.execute(sa.delete(t).where(t.c.published_time < published_before))
        return result.rowcount
