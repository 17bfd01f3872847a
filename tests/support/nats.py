"""A real nats-server with JetStream for a test, and reading back what a stream holds.

The `nats_server` fixture (registered in tests/conftest.py) starts one per test in its temporary
directory; `stop()` then `start()` brings it back on the same port and store (an outage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from points.events.v1 import envelope_pb2
from points_platform.embedded_nats import EmbeddedNats
from points_platform.jetstream import connect, stream_name
from points_platform.relay import MSG_ID_HEADER
from tests.support.wait import eventually


@asynccontextmanager
async def running_nats(directory: Path) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats(directory)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    async with running_nats(tmp_path / "nats") as server:
        yield server


@pytest.fixture(scope="module")
async def module_nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedNats]:
    """One nats-server for a module's tests (a service's event tests share it, each on its own database)."""
    async with running_nats(Path(tmp_path_factory.mktemp("nats"))) as server:
        yield server


@pytest.fixture(scope="module")
async def module_nats_client(module_nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    """A client of `module_nats_server` for reading back what the streams hold."""
    client = await connect_client(module_nats_server)
    try:
        yield client
    finally:
        await client.close()


async def connect_client(server: EmbeddedNats) -> NatsClient:
    """A client that reconnects quickly after the server comes back (the pace of its attempts)."""
    return await connect(server.url, name="test", reconnect_wait_seconds=0.05)


async def connect_once(url: str) -> NatsClient:
    """A client that fails (NoServersError) instead of retrying when nobody answers at `url`."""

    async def quiet(_error: Exception) -> None:
        pass  # the failure is raised; the client's own traceback per attempt adds nothing

    return await nats.connect(url, name="test", error_cb=quiet, max_reconnect_attempts=1, reconnect_time_wait=0.05)


async def reconnected(nc: NatsClient) -> None:
    async def connected() -> bool:
        return bool(nc.is_connected)

    await eventually(connected, what="the NATS client reconnected")


@dataclass(frozen=True)
class Stored:
    """One message as the stream stored it."""

    stream_sequence: int
    subject: str
    msg_id: str
    event: envelope_pb2.Event


async def stream_contents(nc: NatsClient, stream: str) -> list[Stored]:
    """Every message of `stream`, in stream order (what any consumer would be delivered)."""
    js = nc.jetstream()
    state = (await js.stream_info(stream)).state
    stored = []
    for sequence in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        msg = await js.get_msg(stream, sequence)
        assert msg.subject is not None and msg.data is not None and msg.headers is not None
        stored.append(
            Stored(sequence, msg.subject, msg.headers[MSG_ID_HEADER], envelope_pb2.Event.FromString(msg.data))
        )
    return stored


async def drained_stream(engine: AsyncEngine, nc: NatsClient, service: str) -> list[Stored]:
    """What `service`'s stream holds once its outbox (table `outbox` in `engine`'s database) is
    drained: exactly the outbox's rows, each event id once, in stream order."""

    async def count(where: str = "") -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM outbox {where}"))).scalar_one())

    async def drained() -> bool:
        return await count("WHERE published_time IS NULL") == 0

    await eventually(drained, what=f"the {service} relay published every committed event")
    if await count() == 0:
        return []  # the stream may not exist yet
    stored = await stream_contents(nc, stream_name(service))
    assert len({m.msg_id for m in stored}) == len(stored) == await count()
    return stored
