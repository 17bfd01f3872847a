"""The earning database as the use cases see it: transactions handing out the repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from earning.store import tables
from earning.store.activity import ActivityRepository
from earning.store.admin import AdminRepository
from earning.store.batch import BatchRepository
from earning.store.events import EarningEvents, Written
from earning.store.outbox import OutboxRepository
from points_platform.idempotency import SHARED_TABLE, Recorded, RequestKey, TableStorage, idempotent
from points_platform.unit_of_work import RaceLost, Transaction, Transactions, retry

T = TypeVar("T")
R = TypeVar("R", bound=Message)

# Replies stored before they were the RPC's reply message: a `google.protobuf.Struct` of a small
# JSON object (an id, a version) from which the use case rebuilds the reply (migration 0012).
_STRUCT_REPLIES = TableStorage(tables.idempotency_struct_replies.name)


class _AdminReplies:
    """The shared table, then the keys stored as a Struct before replies were typed: one mechanism
    (`points_platform.idempotency`), with the old keys still replayed and still refusing reuse."""

    def __init__(self, legacy: Callable[[Session, dict[str, Any]], Awaitable[Message]], events: EarningEvents) -> None:
        self._legacy = legacy
        self._events = events

    async def find(self, tx: Transaction, key: RequestKey) -> Recorded | None:
        recorded = await SHARED_TABLE.find(tx, key)
        if recorded is not None:
            return recorded
        old = await _STRUCT_REPLIES.find(tx, key)
        if old is None or old.fingerprint != key.fingerprint:
            return old  # None, or a reused key (refused before the reply is looked at)
        assert isinstance(old.reply, bytes)
        stored = json_format.MessageToDict(Struct.FromString(old.reply))
        return Recorded(old.fingerprint, await self._legacy(Session(tx.connection, self._events), stored))

    async def record(self, tx: Transaction, key: RequestKey, reply: Message) -> None:
        await SHARED_TABLE.record(tx, key, reply)


class Session:
    """The repositories of one connection, in the transaction that opened it; `written` says whether
    they appended domain events."""

    def __init__(self, conn: AsyncConnection, events: EarningEvents) -> None:
        self.written = written = Written()
        self.batch = BatchRepository(conn, events, written)
        self.activity = ActivityRepository(conn, events, written)
        self.admin = AdminRepository(conn, events, written)
        self.outbox = OutboxRepository(conn)


class Database:
    """The platform's unit of work (`points_platform.unit_of_work`) with earning's repositories."""

    def __init__(self, transactions: Transactions, events: EarningEvents) -> None:
        self._transactions = transactions
        self._engine: AsyncEngine = transactions.engine
        self._events = events

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """One read-write transaction: committed when the block ends, rolled back on an error. A commit
        that appended events wakes the relay."""
        async with self._transactions.begin() as tx:
            session = Session(tx.connection, self._events)
            yield session
        if session.written.events:
            self._events.wake()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Session]:
        """Reads (each statement its own snapshot); nothing to commit."""
        async with self._engine.connect() as conn:
            yield Session(conn, self._events)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Session]:
        """Reads from one read-only snapshot: every read sees the same state, and a write fails."""
        async with self._engine.connect() as conn:
            session = Session(conn, self._events)
            await session.batch.begin_snapshot()
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Session]:
        """Each statement commits on its own: one statement is atomic without BEGIN/COMMIT."""
        async with self._engine.connect() as conn:
            yield Session(await conn.execution_options(isolation_level="AUTOCOMMIT"), self._events)

    async def idempotent(
        self, key: RequestKey, reply_type: type[R], work: Callable[[Session], Awaitable[R]],
        legacy: Callable[[Session, dict[str, Any]], Awaitable[R]],
    ) -> R:
        """The platform's idempotency (`points_platform.idempotency`, the shared table): the reply
        stored under `key`, else `work`'s, stored in the same transaction as its effect, as the proto
        bytes of the RPC's reply. Keys stored before that (migration 0012) answer through `legacy`.
        A commit that appended events wakes the relay."""
        wrote: list[Session] = []

        async def reply(tx: Transaction) -> R:
            wrote.clear()  # a retried attempt starts over
            session = Session(tx.connection, self._events)
            wrote.append(session)
            return await work(session)

        result = await idempotent(
            self._transactions, key, reply_type, reply, storage=_AdminReplies(legacy, self._events),
        )
        if any(s.written.events for s in wrote):
            self._events.wake()
        return result

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` (which opens its own transaction) again, with the unit of work's retry
        policy, after a serialization failure or deadlock, and after a unique violation: in earning
        that is a concurrent twin that committed the same key first (an event id, a request id, a
        participation), whose row the next attempt finds and replays."""

        async def once() -> T:
            try:
                return await attempt()
            except IntegrityError as exc:
                raise RaceLost(str(exc.orig)) from exc

        return await retry(once, self._transactions.retry_policy)
