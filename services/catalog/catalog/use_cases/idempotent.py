"""Mutations run once per request id: the claim, the effect and the stored reply in one transaction.

A domain error rolls the claim back with everything else, so a retry is evaluated afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime

from catalog.use_cases.commands import Idempotent
from catalog.use_cases.ports import Database, Reply, StoredReply, Transaction
from points_platform.clock import Clock
from points_platform.errors import idempotency_key_reused


def derived_id(prefix: str, request_id: str) -> str:
    """Ids derived from the idempotency key: stable across retries and reseeding."""
    return f"{prefix}-{hashlib.sha256(request_id.encode()).hexdigest()[:20]}"


def replayed(command: Idempotent, stored: StoredReply[Reply]) -> Reply:
    """The stored reply of a same-key call; a different request under that key is refused."""
    if stored.fingerprint != command.fingerprint:
        raise idempotency_key_reused(command.request_id)
    return stored.reply


async def run_once(
    db: Database,
    clock: Clock,
    method: str,
    command: Idempotent,
    kind: type[Reply],
    effect: Callable[[Transaction, datetime], Awaitable[Reply]],
) -> Reply:
    """Claim the key, run the effect and store its reply, all in one transaction."""
    now = clock.now()

    async def attempt() -> Reply:
        async with db.transaction() as tx:
            stored = await tx.requests.claim(method, command.request_id, command.fingerprint, now, kind)
            if stored is not None:
                return replayed(command, stored)
            result = await effect(tx, now)
            await tx.requests.save_reply(method, command.request_id, result)
            return result

    return await db.retrying(attempt)
