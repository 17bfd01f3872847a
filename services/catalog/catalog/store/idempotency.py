"""Idempotency keys of mutating calls and the replies they produced."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.store.rows import snapshot, stored_reply
from catalog.store.tables import idempotency
from catalog.use_cases.ports import AnyReply, Reply, StoredReply


class RequestLog:
    """The idempotency table of one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim(
        self, method: str, request_id: str, fingerprint: str, now: datetime, kind: type[Reply]
    ) -> StoredReply[Reply] | None:
        """Claim (method, request_id) (None), or return what it stored.

        ON CONFLICT waits for a concurrent claimer of the same key to finish, so the loser
        reads the winner's committed reply instead of running the effect twice.
        """
        inserted = await self.conn.execute(
            insert(idempotency)
            .values(method=method, request_id=request_id, fingerprint=fingerprint, create_time=now)
            .on_conflict_do_nothing()
            .returning(idempotency.c.request_id)
        )
        if inserted.first() is not None:
            return None
        row = (
            await self.conn.execute(
                select(idempotency.c.fingerprint, idempotency.c.response).where(
                    idempotency.c.method == method, idempotency.c.request_id == request_id
                )
            )
        ).one()
        return StoredReply(row.fingerprint, stored_reply(kind, row.response))

    async def save_reply(self, method: str, request_id: str, reply: AnyReply) -> None:
        await self.conn.execute(
            update(idempotency)
            .where(idempotency.c.method == method, idempotency.c.request_id == request_id)
            .values(response=snapshot(reply))
        )
