"""The credit outbox: wallet credits decided in a transaction, sent after it, retried until credited
or refused for good (the dead letter: `pending` false, `failed_time` set, no wallet transaction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.credit import DeadLetter, FailedCredit, PendingCredit, Requeue
from earning.store.tables import credits


def _credit(row: Any) -> PendingCredit:
    """The credit of a `credits` row (any row with its five columns)."""
    return PendingCredit(row.request_id, row.user_id, row.amount, row.reason, row.reference)


# The credits of a user's day that are not in the wallet: its events' and its approved held
# earnings'. The events are found through (user_id, occurred_at) within a window that contains the
# local day in any time zone (±14 h), then filtered by their stored local day.
_UNCREDITED_ON = text(
    "SELECT coalesce(sum(c.amount) FILTER (WHERE c.pending), 0) AS pending,"
    " coalesce(sum(c.amount) FILTER (WHERE c.failed_time IS NOT NULL), 0) AS failed"
    " FROM credits c WHERE (c.pending OR c.failed_time IS NOT NULL) AND c.request_id IN ("
    " SELECT e.credit_request_id FROM events e WHERE e.user_id = :u AND e.occurred_at >= :lo"
    " AND e.occurred_at < :hi AND e.day = :d AND e.credit_request_id <> ''"
    " UNION ALL SELECT h.credit_request_id FROM held_earnings h"
    " WHERE h.user_id = :u AND h.day = :d AND h.credit_request_id <> '')"
)


# The common outcome, every credit credited: their wallet transaction ids, by primary key.
_CREDITED = (
    "UPDATE credits c SET pending = false, failed_time = NULL, held_time = NULL, wallet_transaction_id = q.tx,"
    " attempts = c.attempts + 1, last_error = ''"
    " FROM unnest(CAST(:ids AS text[]), CAST(:txs AS text[])) AS q(rid, tx) WHERE c.request_id = q.rid"
)
_MARK_CREDITED = text(_CREDITED)

# All outcomes of a send in one statement (disjoint rows), when some failed or were refused.
# Only a still-pending credit is dead-lettered (a concurrent send may have credited it); a credited
# one leaves the dead letter. A suspect (failed alone by the wallet itself) counts a wallet error
# and is dead-lettered at the limit (SET sees the old `wallet_errors`). A held one (its user is
# suspended) stays pending with its held_time, due again after the retry interval. `pending IS TRUE` (not
# plain `pending`) keeps the planner off the partial pending index: it looks the ids up by primary
# key instead of walking every pending credit (thousands under load).
_MARK_SENT = text(
    f"WITH ok AS ({_CREDITED}),"
    " failed AS (UPDATE credits c SET attempts = c.attempts + 1, last_error = :error"
    " FROM unnest(CAST(:failed AS text[])) AS q(rid) WHERE c.request_id = q.rid AND c.pending IS TRUE),"
    " dead AS (UPDATE credits c SET pending = false, failed_time = CAST(:now AS timestamptz),"
    " attempts = c.attempts + 1,"
    " last_error = q.why FROM unnest(CAST(:refused AS text[]), CAST(:why AS text[])) AS q(rid, why)"
    " WHERE c.request_id = q.rid AND c.pending IS TRUE"
    " RETURNING c.request_id, c.user_id, c.amount, c.reason, c.reference, c.last_error, c.attempts),"
    " suspect AS (UPDATE credits c SET attempts = c.attempts + 1, wallet_errors = c.wallet_errors + 1,"
    " last_error = q.why, pending = c.wallet_errors + 1 < :limit,"
    " failed_time = CASE WHEN c.wallet_errors + 1 >= :limit THEN CAST(:now AS timestamptz) END"
    " FROM unnest(CAST(:suspect AS text[]), CAST(:suspect_why AS text[])) AS q(rid, why)"
    " WHERE c.request_id = q.rid AND c.pending IS TRUE"
    " RETURNING c.request_id, c.user_id, c.amount, c.reason, c.reference, c.last_error, c.attempts, c.pending),"
    " held AS (UPDATE credits c SET attempts = c.attempts + 1, last_error = q.why,"
    " held_time = CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:held AS text[]), CAST(:held_why AS text[])) AS q(rid, why)"
    " WHERE c.request_id = q.rid AND c.pending IS TRUE)"
    " SELECT * FROM dead UNION ALL"
    " SELECT request_id, user_id, amount, reason, reference, last_error, attempts FROM suspect WHERE NOT pending"
)


_LIST_FAILED = text(
    "SELECT request_id, user_id, amount, reason, reference, last_error, attempts, failed_time FROM credits"
    " WHERE failed_time IS NOT NULL AND (:user = '' OR user_id = :user)"
    " AND (CAST(:after_time AS timestamptz) IS NULL OR (failed_time, request_id) > (:after_time, :after_id))"
    " ORDER BY failed_time, request_id LIMIT :limit"
)


# Dead letter -> outbox: pending again, attempts and wallet errors from zero (least-tried go first), the
# last error kept until the next send. Rows not in the dead letter are left as they are.
_REQUEUE = text(
    "WITH found AS (SELECT request_id, failed_time IS NOT NULL AS failed FROM credits"
    " WHERE request_id = ANY(CAST(:ids AS text[])) FOR UPDATE),"
    " requeued AS (UPDATE credits c SET pending = true, failed_time = NULL, attempts = 0, wallet_errors = 0"
    " FROM found f WHERE c.request_id = f.request_id AND f.failed"
    " RETURNING c.request_id, c.user_id, c.amount, c.reason, c.reference)"
    " SELECT f.request_id, f.failed, r.user_id, r.amount, r.reason, r.reference"
    " FROM found f LEFT JOIN requeued r ON r.request_id = f.request_id"
)


# Both counts from the partial indexes (the table itself grows with every credit ever made).
_COUNTS = text(
    "SELECT (SELECT count(*) FROM credits WHERE pending) AS pending,"
    " (SELECT count(*) FROM credits WHERE failed_time IS NOT NULL) AS failed"
)


class OutboxRepository:
    """The credit outbox and its dead letter, on the caller's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_credit(self, credit: PendingCredit, now: datetime) -> None:
        await self._conn.execute(
            insert(credits)
            .values(
                request_id=credit.request_id, user_id=credit.user_id, amount=credit.amount, reason=credit.reason,
                reference=credit.reference, pending=True, create_time=now,
            )
            .on_conflict_do_nothing()
        )

    async def credit_state(self, request_id: str) -> tuple[PendingCredit | None, str]:
        """(the credit if still pending, wallet transaction id if credited)."""
        row = (await self._conn.execute(select(credits).where(credits.c.request_id == request_id))).first()
        if row is None:
            return None, ""
        if row.pending:
            return _credit(row), ""
        return None, row.wallet_transaction_id

    async def uncredited_points_on(self, user_id: str, day: date) -> tuple[int, int]:
        """(pending, dead-lettered) points of a user's day: decided, not (yet) in the wallet."""
        lo = datetime.combine(day - timedelta(days=1), time.min, UTC)
        row = (
            await self._conn.execute(_UNCREDITED_ON, {"u": user_id, "d": day, "lo": lo, "hi": lo + timedelta(days=3)})
        ).one()
        return int(row.pending), int(row.failed)

    async def due_credits(
        self, created_by: datetime, limit: int, *, held_before: datetime
    ) -> list[PendingCredit]:
        """Pending credits created by `created_by` (younger ones are still being sent by their
        request), least-tried first: credits the wallet keeps refusing never starve the others. A credit
        held for a suspended user is due again once it was held before `held_before`."""
        stmt = (
            select(credits)
            .where(
                and_(
                    credits.c.pending,
                    credits.c.create_time <= created_by,
                    or_(credits.c.held_time.is_(None), credits.c.held_time <= held_before),
                )
            )
            .order_by(credits.c.attempts, credits.c.create_time)
            .limit(limit)
        )
        rows = await self._conn.execute(stmt)
        return [_credit(r) for r in rows]

    async def mark_sent(
        self, transactions: Mapping[str, str], refused: Mapping[str, str], failed: Sequence[str],
        error: str, suspect: Mapping[str, str], wallet_error_limit: int, now: datetime,
        held: Mapping[str, str] | None = None,
    ) -> list[DeadLetter]:
        """Credited ones get their wallet transaction id; failed ones an attempt and the error; refused
        ones go to the dead letter with their reason, suspect ones once they reach the wallet error
        limit, held ones (user suspended) stay pending with their held time. Returns the credits
        dead-lettered now."""
        held = held or {}
        if not transactions and not refused and not failed and not suspect and not held:
            return []
        ids, dead, suspects, kept = sorted(transactions), sorted(refused), sorted(suspect), sorted(held)
        if not refused and not failed and not suspect and not held:
            await self._conn.execute(_MARK_CREDITED, {"ids": ids, "txs": [transactions[i] for i in ids]})
            return []
        rows = await self._conn.execute(
            _MARK_SENT,
            {
                "ids": ids, "txs": [transactions[i] for i in ids], "failed": sorted(failed), "error": error[:200],
                "refused": dead, "why": [refused[i][:200] for i in dead],
                "suspect": suspects, "suspect_why": [suspect[i][:200] for i in suspects],
                "limit": wallet_error_limit, "now": now,
                "held": kept, "held_why": [held[i][:200] for i in kept],
            },
        )
        return [
            DeadLetter(_credit(r), r.last_error, r.attempts)
            for r in rows
        ]

    async def list_failed(
        self, user_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[FailedCredit]:
        """Dead-lettered credits, oldest failure first, after the cursor (failed_time, request_id)."""
        rows = await self._conn.execute(
            _LIST_FAILED,
            {"user": user_id, "after_time": after[0] if after else None, "after_id": after[1] if after else "",
             "limit": limit},
        )
        return [
            FailedCredit(_credit(r), r.last_error, r.attempts, r.failed_time)
            for r in rows
        ]

    async def requeue(self, request_ids: Sequence[str]) -> Requeue:
        """Move the dead-lettered ones among `request_ids` back to the outbox (in the caller's transaction)."""
        rows = {r.request_id: r for r in await self._conn.execute(_REQUEUE, {"ids": sorted(set(request_ids))})}
        requeued = [_credit(rows[i]) for i in sorted(rows) if rows[i].failed]
        unchanged = sorted(i for i, r in rows.items() if not r.failed)
        unknown = sorted(set(request_ids) - set(rows))
        return Requeue(requeued, unchanged, unknown)

    async def outbox_counts(self) -> tuple[int, int]:
        """(pending credits, dead-lettered credits)."""
        row = (await self._conn.execute(_COUNTS)).one()
        return int(row.pending), int(row.failed)
