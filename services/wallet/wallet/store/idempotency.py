"""The wallet's use of the platform's idempotency (`points_platform.idempotency`): request keys, the
storage of calls that name no user, the races a write can lose, and the retry of the statements that
run outside a unit of work.

A key is `(user_id, request_id)`: the user a request acts for (the credited or debited user, the
gift's sender, the payout's creator, the reserved hold's user). Of the calls that name no user,
CommitHold and ReleaseHold (the hot path) are keyed by their hold's user, found by the hold id in
the statement that reads the stored reply (`holds.py`; an unknown hold is HOLD_NOT_FOUND whatever
the key); RefundHold and CompletePayout by the user their hold or payout id names (`domain.id_owner`),
or for an id that names none the platform's rule for a request that names no user, `user_id = ''`,
so a key reused for an unknown hold or payout of that user is still refused (`LockedFirst`). The
fingerprint is the platform's over the command's digest (`domain.fingerprint`,
which the old table stored), so rows carried over keep their reuse check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from points_platform.idempotency import SHARED_TABLE, Recorded, ReplyStorage, RequestKey
from points_platform.unit_of_work import RaceLost, RetryPolicy, Transaction, retry
from wallet.replies import full_method

T = TypeVar("T")

RETRY = RetryPolicy()


class RequestIdRaceError(RaceLost):
    """A concurrent call with the same request_id committed first: redo, and replay its answer."""


class PaymentReferenceRaceError(RequestIdRaceError):
    """A concurrent batch credited the same payment reference first: redo (the refused payment then
    fails alone with PAYMENT_ALREADY_CREDITED, its neighbours apply)."""


def request_key(method: str, user_id: str, request_id: str, digest: str) -> RequestKey:
    """The key of a wallet request: `method` its RPC's short name, `digest` the command's
    `domain.fingerprint` (hex)."""
    return RequestKey.from_digest(full_method(method), request_id, digest, user_id=user_id)


async def run_statement(attempt: Callable[[], Awaitable[T]]) -> T:
    """The hold hot path's single statements, each its own implicit transaction (no BEGIN/COMMIT
    round trips, so not a unit of work): retried by the unit of work's rules all the same
    (serialization failures and deadlocks with backoff, a lost same-key race at once)."""
    return await retry(attempt, RETRY)


class LockedFirst:
    """The shared table, read after `lock(tx)` has locked the row the request acts on (a hold, a
    payout): a same-key call that waited for the lock then reads the winner's reply (a fresh
    snapshot) instead of judging the request again. `lock` keeps what it found (or the refusal)
    for the work; the key is read whatever it found, so a key reused for an unknown id is still
    IDEMPOTENCY_KEY_REUSED."""

    def __init__(self, lock: Callable[[Transaction], Awaitable[None]], table: ReplyStorage = SHARED_TABLE) -> None:
        self._lock = lock
        self._table = table

    async def find(self, tx: Transaction, key: RequestKey) -> Recorded | None:
        await self._lock(tx)
        return await self._table.find(tx, key)

    async def record(self, tx: Transaction, key: RequestKey, reply: Message) -> None:
        await self._table.record(tx, key, reply)
