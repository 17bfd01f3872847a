"""Idempotency of mutating RPCs, one mechanism for every service (AIP-155).

A request's key is `(user_id, request_id)` (`user_id` is '' when the request names no user; it is
the column a distributed database would shard on). Its fingerprint is
`sha256(method full name ‖ 0x00 ‖ sha256(the request's deterministic serialization without its
request_id))`: the method is part of it, so one key reused for another RPC is a reuse too. The
inner digest is what `validation.fingerprint` has always stored (as hex), so rows written before
this module keep their full reuse check when a migration carries them over
(`fingerprint_from_digest`).

The rules, in `idempotent` and nowhere else:
- same key, same fingerprint: the stored reply, decoded into the reply type; the work does not run;
- same key, other fingerprint: `ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED`;
- a first request: the work runs and its reply is stored in the same transaction as its effect,
  so a failed or rolled-back work stores nothing and a retry is judged afresh;
- two first requests with one key at once: both run their work, the second to store its key
  meets the first's unique key, waits for it to commit and fails; the unit of work rolls it back
  (its effect with it) and runs it again, and it now replays the winner's reply. One effect.

Where the reply is kept is the service's choice, behind one interface (`ReplyStorage`):
- `TableStorage`: the shared `idempotency` table, created by each service's migrations with the
  frozen `migrations.create_idempotency_table_v1` and named in its metadata by `idempotency_table()`
  (the default);
- `FoldedStorage`: the rows a hot write creates carry the key themselves (a unique
  `(user_id, request_id)` on them) and the service says how to find the reply for a key, which
  saves writing a second row per request. Its work writes the key and `key.fingerprint` (or what
  the fingerprint derives from, such as the request digest) into those rows; their unique
  constraint decides the race as the table's primary key would. A work that finds, under a lock it
  took, that a request with its key committed meanwhile raises `RaceLost` to be run again as a
  replay (redemption's ConsumeEntitlement does: the rule would otherwise judge the count the
  winner left).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

import asyncpg
from google.protobuf.message import Message
from sqlalchemy import MetaData, Table
from sqlalchemy.exc import DBAPIError

from points_platform.db import sqlstate
from points_platform.errors import idempotency_key_reused
from points_platform.migrations import idempotency_columns_v1
from points_platform.unit_of_work import RaceLost, Transaction, Transactions
from points_platform.validation import request_digest

R = TypeVar("R", bound=Message)

IDEMPOTENCY_TABLE = "idempotency"
_UNIQUE_VIOLATION = "23505"


def idempotency_table(metadata: MetaData, name: str = IDEMPOTENCY_TABLE) -> Table:
    """The shared table in a service's metadata: what the code runs against, in the shape of the
    version in use (migrations create it with the frozen `migrations.create_idempotency_table_v1`;
    a test checks each service's migrated schema against its metadata)."""
    return Table(name, metadata, *idempotency_columns_v1())


def fingerprint_from_digest(method: str, digest: bytes | str) -> bytes:
    """The fingerprint of a request of `method` whose `request_digest` is `digest` (bytes, or hex as
    `validation.fingerprint` gives it and rows that fold their key keep it; migrations carry rows
    that stored only the digest over with this)."""
    raw = bytes.fromhex(digest) if isinstance(digest, str) else digest
    return hashlib.sha256(method.encode() + b"\x00" + raw).digest()


def request_fingerprint(method: str, request: Message) -> bytes:
    return fingerprint_from_digest(method, request_digest(request))


def method_name(service: str, method: str) -> str:
    """A method's full name as the fingerprint takes it: `points.wallet.v1.WalletService.Credit`."""
    return f"{service}.{method}"


@dataclass(frozen=True)
class RequestKey:
    """What a request is known by: its key, the method it called and its fingerprint."""

    user_id: str
    request_id: str
    method: str
    fingerprint: bytes

    @classmethod
    def of(cls, method: str, request: Message, *, user_id: str = "") -> RequestKey:
        """The key of a request carrying a `request_id` field (validated by the caller)."""
        return cls(user_id, getattr(request, "request_id"), method, request_fingerprint(method, request))  # noqa: B009

    @classmethod
    def from_digest(cls, method: str, request_id: str, digest_hex: str, *, user_id: str = "") -> RequestKey:
        """The key of a request whose `validation.fingerprint` (the hex request digest) is at hand:
        for a service that stores the digest in the rows its write creates (folded storage)."""
        return cls(user_id, request_id, method, fingerprint_from_digest(method, digest_hex))


@dataclass(frozen=True)
class Recorded:
    """What storage holds for a key: the first request's fingerprint and its reply (proto bytes,
    or a message the service rebuilt from the rows that carry the key)."""

    fingerprint: bytes
    reply: bytes | Message


class ReplyStorage(Protocol):
    async def find(self, tx: Transaction, key: RequestKey) -> Recorded | None:
        """The recorded reply for the key, if a request with it has committed."""
        ...

    async def record(self, tx: Transaction, key: RequestKey, reply: Message) -> None:
        """Keep the reply under the key in `tx`; a unique violation when the key exists."""
        ...


class TableStorage:
    """Replies in the shared `idempotency` table (any service's: addressed by name). Its two statements
    run on the transaction's raw asyncpg connection, prepared once per connection: every mutating RPC
    of a service on this storage pays them (docs/benchmarks.md, "Idempotency storage")."""

    def __init__(self, name: str = IDEMPOTENCY_TABLE, now: Callable[[], datetime] | None = None) -> None:
        if not name.isidentifier():
            raise ValueError(f"not a table name: {name!r}")
        self._find = f"SELECT fingerprint, reply FROM {name} WHERE user_id = $1 AND request_id = $2"
        created = "$6" if now else "now()"
        self._record = (f"INSERT INTO {name} (user_id, request_id, method, fingerprint, reply, created_time) "
                        f"VALUES ($1, $2, $3, $4, $5, {created})")
        self._now = now

    async def find(self, tx: Transaction, key: RequestKey) -> Recorded | None:
        row = await (await tx.driver()).fetchrow(self._find, key.user_id, key.request_id)
        return None if row is None else Recorded(bytes(row["fingerprint"]), bytes(row["reply"]))

    async def record(self, tx: Transaction, key: RequestKey, reply: Message) -> None:
        values: list[object] = [key.user_id, key.request_id, key.method, key.fingerprint,
                                reply.SerializeToString(deterministic=True)]
        if self._now:
            values.append(self._now())
        await (await tx.driver()).execute(self._record, *values)


FindFolded = Callable[[Transaction, RequestKey], Awaitable[Recorded | None]]


class FoldedStorage:
    """Replies folded into the rows the write creates: `find` reads them back for a key; nothing
    else is written (the work's own rows carry the key, under a unique constraint)."""

    def __init__(self, find: FindFolded) -> None:
        self._find = find

    async def find(self, tx: Transaction, key: RequestKey) -> Recorded | None:
        return await self._find(tx, key)

    async def record(self, tx: Transaction, key: RequestKey, reply: Message) -> None:
        return None


SHARED_TABLE = TableStorage()


def check_same_request(stored_fingerprint: bytes, key: RequestKey) -> None:
    """The reuse rule: a key stored with another request's fingerprint is IDEMPOTENCY_KEY_REUSED.
    `replayed` applies it; so does a use case that answers a replay from the rows holding the key
    rather than from a stored reply (redemption's Redeem and RefundRedemption: the saga's state)."""
    if stored_fingerprint != key.fingerprint:
        raise idempotency_key_reused(key.request_id)


def replayed(recorded: Recorded, key: RequestKey, reply_type: type[R]) -> R:
    """The stored reply for a request with this key, or IDEMPOTENCY_KEY_REUSED."""
    check_same_request(recorded.fingerprint, key)
    if isinstance(recorded.reply, reply_type):
        return recorded.reply
    if isinstance(recorded.reply, Message):
        raise TypeError(f"{key.method} recorded a {type(recorded.reply).__name__}, not a {reply_type.__name__}")
    return reply_type.FromString(recorded.reply)


async def find_reply(transactions: Transactions, key: RequestKey, reply_type: type[R], *,
                     storage: ReplyStorage = SHARED_TABLE) -> R | None:
    """The stored reply, before any work: for a use case that must call another service before its
    transaction (never inside it) and wants a replay not to make that call again."""
    recorded = await transactions.run(lambda tx: storage.find(tx, key))
    return None if recorded is None else replayed(recorded, key, reply_type)


def _is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError | asyncpg.PostgresError) and sqlstate(exc) == _UNIQUE_VIOLATION


async def idempotent(transactions: Transactions, key: RequestKey, reply_type: type[R],
                     work: Callable[[Transaction], Awaitable[R]], *, storage: ReplyStorage = SHARED_TABLE) -> R:
    """The reply of the request with `key`: replayed when stored, else `work(tx)`'s, stored in the
    same transaction as its effect. `work` runs at most once per committed key; it may run again
    after a conflict rolled it back, so it calls no other service."""
    lost: list[BaseException] = []

    async def attempt(tx: Transaction) -> R:
        recorded = await storage.find(tx, key)
        if recorded is not None:
            return replayed(recorded, key, reply_type)
        if lost:
            # The unique violation was not this key's (the key is still free): the work's own.
            raise lost[0]
        try:
            reply = await work(tx)
            await storage.record(tx, key, reply)
        except (DBAPIError, asyncpg.PostgresError) as exc:
            if not _is_unique_violation(exc):
                raise
            lost.append(exc)
            raise RaceLost(key.request_id) from exc
        return reply

    return await transactions.run(attempt)
