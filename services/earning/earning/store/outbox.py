"""The credit outbox: wallet credits decided in a transaction, sent after it, retried until credited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.tables import credits


@dataclass(frozen=True)
class PendingCredit:
    request_id: str  # wallet idempotency key, derived from the event (or join) id
    user_id: str
    amount: int
    reason: str
    reference: str


async def add_credit(conn: AsyncConnection, credit: PendingCredit) -> None:
    await conn.execute(
        insert(credits)
        .values(
            request_id=credit.request_id, user_id=credit.user_id, amount=credit.amount, reason=credit.reason,
            reference=credit.reference, pending=True,
        )
        .on_conflict_do_nothing()
    )


async def credit_state(conn: AsyncConnection, request_id: str) -> tuple[PendingCredit | None, str]:
    """(the credit if still pending, wallet transaction id if credited)."""
    row = (await conn.execute(select(credits).where(credits.c.request_id == request_id))).first()
    if row is None:
        return None, ""
    if row.pending:
        return PendingCredit(row.request_id, row.user_id, row.amount, row.reason, row.reference), ""
    return None, row.wallet_transaction_id


async def due_credits(conn: AsyncConnection, min_age_seconds: float, limit: int) -> list[PendingCredit]:
    """Pending credits older than min_age (fresh ones are still being sent by their request),
    least-tried first: credits the wallet keeps refusing never starve the others."""
    stmt = (
        select(credits)
        .where(and_(credits.c.pending, credits.c.create_time <= func.now() - text("make_interval(secs => :age)")))
        .order_by(credits.c.attempts, credits.c.create_time)
        .limit(limit)
    )
    rows = await conn.execute(stmt, {"age": min_age_seconds})
    return [PendingCredit(r.request_id, r.user_id, r.amount, r.reason, r.reference) for r in rows]


# Both outcomes of a send in one statement (disjoint rows).
_MARK_SENT = text(
    "WITH ok AS (UPDATE credits c SET pending = false, wallet_transaction_id = q.tx, attempts = c.attempts + 1,"
    " last_error = '' FROM unnest(CAST(:ids AS text[]), CAST(:txs AS text[])) AS q(rid, tx)"
    " WHERE c.request_id = q.rid RETURNING 1),"
    " failed AS (UPDATE credits SET attempts = attempts + 1, last_error = :error"
    " WHERE request_id = ANY(CAST(:failed AS text[])) AND pending RETURNING 1)"
    " SELECT (SELECT count(*) FROM ok) + (SELECT count(*) FROM failed)"
)


async def mark_sent(conn: AsyncConnection, transactions: Mapping[str, str], failed: Sequence[str], error: str) -> None:
    """Credited ones get their wallet transaction id; failed ones an attempt and the error."""
    if not transactions and not failed:
        return
    ids = sorted(transactions)
    await conn.execute(
        _MARK_SENT, {"ids": ids, "txs": [transactions[i] for i in ids], "failed": sorted(failed), "error": error[:200]}
    )


async def pending_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(credits).where(credits.c.pending))).scalar_one())
