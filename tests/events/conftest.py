"""An outbox on a fresh database, a real nats-server with the service's stream, and a way to make
changes the way a service does: lock the aggregate, bump its version, append its event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from nats.aio.client import Client as NatsClient
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from points.common.v1 import common_pb2
from points.events.v1 import envelope_pb2, wallet_pb2
from points_platform.clock import ManualClock
from points_platform.db import create_engine
from points_platform.embedded_nats import EmbeddedNats
from points_platform.events import new_event
from points_platform.jetstream import ensure_streams, stream_name
from points_platform.outbox import Outbox, outbox_table
from points_platform.relay import JetStreamPublisher, Publisher, Relay
from tests.conftest import NewDatabase
from tests.support.nats import Stored, connect_client, stream_contents

SERVICE = "wallet"
PARTITIONS = 4


@dataclass
class Feed:
    engine: AsyncEngine
    outbox: Outbox
    versions: sa.Table
    nc: NatsClient
    clock: ManualClock
    appended: list[str] = field(default_factory=list)  # event ids of committed changes, in commit order

    def relay(self, publisher: Publisher | None = None, *, max_backoff_seconds: float = 30.0) -> Relay:
        return Relay(
            self.engine,
            self.outbox,
            publisher or JetStreamPublisher(self.nc),
            idle_seconds=0.01,  # pacing of run()'s polls while idle
            max_backoff_seconds=max_backoff_seconds,
        )

    async def change(self, user: str) -> envelope_pb2.Event:
        """One committed change of `user`'s balance with its event, ordered by the user's row lock."""
        async with self.engine.begin() as conn:
            upsert = insert(self.versions).values(user_id=user, version=1)
            version = await conn.scalar(
                upsert.on_conflict_do_update(
                    index_elements=[self.versions.c.user_id], set_={"version": self.versions.c.version + 1}
                ).returning(self.versions.c.version)
            )
            assert version is not None
            event = credit_event(user, version, self.clock)
            await self.outbox.append(conn, [event])
        self.appended.append(event.event_id)
        return event

    async def stored(self) -> list[Stored]:
        return await stream_contents(self.nc, stream_name(SERVICE))

    async def unpublished(self) -> int:
        async with self.engine.connect() as conn:
            return (await self.outbox.backlog(conn)).total

    async def is_drained(self) -> bool:
        return await self.unpublished() == 0


def credit_event(user: str, version: int, clock: ManualClock) -> envelope_pb2.Event:
    posted = wallet_pb2.TransactionPosted(
        transaction_id=f"tx-{user}-{version}",
        effect=wallet_pb2.TRANSACTION_EFFECT_CREDIT,
        currency=common_pb2.CURRENCY_POINTS,
        amount=10,
        balance_after=10 * version,
    )
    return new_event(
        SERVICE, posted, user_id=user, aggregate_id=user, aggregate_version=version, occurred_time=clock.now()
    )


@pytest.fixture
async def feed(new_database: NewDatabase, nats_server: EmbeddedNats) -> AsyncIterator[Feed]:
    engine = create_engine(await new_database("events"))
    metadata = sa.MetaData()
    table = outbox_table(metadata)
    versions = sa.Table(
        "versions",
        metadata,
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    clock = ManualClock()
    nc = await connect_client(nats_server)
    await ensure_streams(nc.jetstream(), [SERVICE])
    try:
        yield Feed(engine, Outbox(table, SERVICE, PARTITIONS, clock), versions, nc, clock)
    finally:
        await nc.close()
        await engine.dispose()


def versions_by_user(stored: list[Stored]) -> dict[str, list[int]]:
    """Each user's aggregate versions in the order a consumer de-duplicating by event id sees them."""
    seen: set[str] = set()
    versions: dict[str, list[int]] = {}
    for message in stored:
        if message.event.event_id not in seen:
            seen.add(message.event.event_id)
            versions.setdefault(message.event.user_id, []).append(message.event.aggregate_version)
    return versions
