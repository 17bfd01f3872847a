"""Points lots (only while points expiry is on): create on credit, consume oldest first, expire.

Lot rows of a user are changed only by a transaction holding that user's POINTS account row
lock (the ledger batch and hold commit lock the account first, the expiry job locks accounts
with SKIP LOCKED before their lots), so the lock order stays account -> lots everywhere.
Maintained: for every POINTS account credited only while expiry was on,
`SUM(points_lots.remaining) = available + held`; points credited while expiry was off have no
lot, never expire, and are spent after the lots (a lot-less debit consumes what lots there are).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg
from sqlalchemy import text

from points_platform.unit_of_work import Transaction, Transactions
from wallet.domain import (
    EXPIRY_REASON,
    FORFEITED,
    Currency,
    ExpiringLot,
    Kind,
    LotExpiry,
    plan_expiry,
    user_account,
)
from wallet.store import events
from wallet.store.postgres import driver

# Raw asyncpg statements (the ledger batch and hold commits run them on their transaction's
# driver connection).
_INSERT = (
    "INSERT INTO points_lots (user_id, amount, remaining, expire_time, transaction_id, create_time) "
    "SELECT l.user_id, l.amount, l.amount, $4::timestamptz, l.tid, $5::timestamptz "
    "FROM unnest($1::text[], $2::bigint[], $3::text[]) "
    "WITH ORDINALITY AS l(user_id, amount, tid, n) ORDER BY l.n"
)

# Oldest lot first (expire_time, then lot_id): each lot gives what is still needed after the
# older lots of the same user, `need - (running total before this lot)`, at most its remaining.
_CONSUME = (
    """
    WITH need AS (
        SELECT * FROM unnest($1::text[], $2::bigint[]) AS n(user_id, amount)
    ), ordered AS (
        SELECT l.user_id, l.lot_id, l.remaining, n.amount,
               sum(l.remaining) OVER (PARTITION BY l.user_id ORDER BY l.expire_time, l.lot_id) - l.remaining AS before
        FROM points_lots l JOIN need n ON n.user_id = l.user_id
        WHERE l.remaining > 0
    )
    UPDATE points_lots p SET remaining = p.remaining - LEAST(o.remaining, o.amount - o.before)
    FROM ordered o
    WHERE p.user_id = o.user_id AND p.lot_id = o.lot_id AND o.before < o.amount
    """
)


async def add_lots(
    conn: asyncpg.Connection, lots: Sequence[tuple[str, int, str]], now: datetime, expire_time: datetime
) -> None:
    """One lot per (user_id, amount, transaction_id), all expiring at `expire_time`."""
    if lots:
        await conn.execute(
            _INSERT, [u for u, _, _ in lots], [a for _, a, _ in lots], [t for _, _, t in lots], expire_time, now
        )


async def consume(conn: asyncpg.Connection, spent: Mapping[str, int]) -> None:
    """Take `spent[user]` POINTS from each user's lots, oldest first (accounts already locked;
    `conn` is the driver connection of the caller's open transaction)."""
    users = sorted(u for u, a in spent.items() if a > 0)
    if users:
        await conn.execute(_CONSUME, users, [spent[u] for u in users])


_LOCK_ACCOUNTS = text(
    "SELECT a.user_id, a.available, a.held FROM accounts a "
    "WHERE a.currency = :points AND a.available > 0 AND a.user_id IN "
    "(SELECT l.user_id FROM points_lots l WHERE l.remaining > 0 AND l.expire_time <= :now) "
    "ORDER BY a.user_id LIMIT :n FOR UPDATE OF a SKIP LOCKED"
)
_EXPIRED_LOTS = text(
    "SELECT lot_id, user_id, remaining, transaction_id FROM points_lots "
    "WHERE user_id = ANY(CAST(:users AS text[])) AND remaining > 0 AND expire_time <= :now "
    "ORDER BY user_id, expire_time, lot_id FOR UPDATE"
)
_POST = text(
    """
    WITH lots AS (
        UPDATE points_lots p SET remaining = p.remaining - e.amount, expired = p.expired + e.amount
        FROM unnest(CAST(:lot_users AS text[]), CAST(:lot_ids AS bigint[]), CAST(:amounts AS bigint[]))
             AS e(user_id, lot_id, amount)
        WHERE p.user_id = e.user_id AND p.lot_id = e.lot_id AND p.remaining >= e.amount
        RETURNING 1
    ), moved AS (
        UPDATE accounts a SET available = a.available - d.amount
        FROM unnest(CAST(:d_users AS text[]), CAST(:d_amounts AS bigint[])) AS d(user_id, amount)
        WHERE a.user_id = d.user_id AND a.currency = :points AND a.available >= d.amount
        RETURNING 1
    ), txns AS (
        INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference, create_time)
        SELECT t.tid, t.user_id, 'expiry:' || t.lot_id::text || ':' || t.n::text, :kind, :reason, t.ref,
               CAST(:now AS timestamptz)
        FROM unnest(CAST(:tids AS text[]), CAST(:users AS text[]), CAST(:lot_ids AS bigint[]),
                    CAST(:seqs AS bigint[]), CAST(:refs AS text[])) AS t(tid, user_id, lot_id, n, ref)
    ), legs AS (
        INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after)
        SELECT * FROM unnest(CAST(:p_tids AS text[]), CAST(:p_users AS text[]), CAST(:p_accounts AS text[]),
                             CAST(:p_currencies AS smallint[]), CAST(:p_amounts AS bigint[]),
                             CAST(:p_after AS bigint[]))
    )
    SELECT (SELECT count(*) FROM lots) AS lots, (SELECT count(*) FROM moved) AS moved
    """
)


async def expire_lots(transactions: Transactions, now: datetime, max_accounts: int) -> list[LotExpiry]:
    """Post the expired remainder of lots as EXPIRY transactions (user -> system:forfeited) for up
    to `max_accounts` accounts in one DB transaction; concurrent runs skip each other's accounts
    and a lot's posted remainder is gone from it, so a re-run posts nothing twice."""

    async def attempt(tx: Transaction) -> list[LotExpiry]:
        conn = tx.connection
        accounts = (
            await conn.execute(
                _LOCK_ACCOUNTS, {"points": int(Currency.POINTS), "now": now, "n": max_accounts}
            )
        ).all()
        if not accounts:
            return []
        available = {r.user_id: r.available for r in accounts}
        rows = (await conn.execute(_EXPIRED_LOTS, {"users": sorted(available), "now": now})).all()
        lots = [ExpiringLot(r.lot_id, r.user_id, r.remaining, r.transaction_id) for r in rows]
        planned = plan_expiry(available, lots)
        if not planned:
            return []
        spent: dict[str, int] = {}
        for e in planned:
            spent[e.lot.user_id] = spent.get(e.lot.user_id, 0) + e.amount
        tids = [uuid.uuid4().hex for _ in planned]
        columns = ["tids", "users", "accounts", "currencies", "amounts", "after"]
        p: dict[str, list[object]] = {k: [] for k in columns}
        for tid, e in zip(tids, planned, strict=True):
            for user, account, amount, after in (
                (e.lot.user_id, user_account(e.lot.user_id), -e.amount, e.available_after),
                (e.lot.user_id, FORFEITED, e.amount, None),  # the system leg filed under its user
            ):
                p["tids"].append(tid)
                p["users"].append(user)
                p["accounts"].append(account)
                p["currencies"].append(int(Currency.POINTS))
                p["amounts"].append(amount)
                p["after"].append(after)
        counts = (
            await conn.execute(
                _POST,
                {
                    "lot_users": [e.lot.user_id for e in planned],
                    "lot_ids": [e.lot.lot_id for e in planned],
                    "amounts": [e.amount for e in planned],
                    "d_users": sorted(spent),
                    "d_amounts": [spent[u] for u in sorted(spent)],
                    "points": int(Currency.POINTS),
                    "kind": int(Kind.EXPIRY),
                    "reason": EXPIRY_REASON,
                    "now": now,
                    "tids": tids,
                    "users": [e.lot.user_id for e in planned],
                    # request id: the lot and its remaining before this run (strictly falls: unique)
                    "seqs": [e.lot.remaining for e in planned],
                    "refs": [e.lot.transaction_id for e in planned],
                    **{f"p_{k}": v for k, v in p.items()},
                },
            )
        ).one()
        if counts.lots != len(planned) or counts.moved != len(spent):
            raise RuntimeError("an expiry did not apply; the run is rolled back")
        held = {r.user_id: r.held for r in accounts}
        await events.append(await driver(conn), [
            events.row(events.Posted(e.lot.user_id, Currency.POINTS, events.effect_of(Kind.EXPIRY), -e.amount, tid,
                                     e.lot.transaction_id, balance_after=e.available_after + held[e.lot.user_id]), now)
            for tid, e in zip(tids, planned, strict=True)
        ], now)
        return planned

    return await transactions.run(attempt)
