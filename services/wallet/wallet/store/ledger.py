"""Applying a batch of ledger operations (credits, debits, gifts) in one DB transaction.

Round trips per batch, whatever its size: look up request ids, lock the touched accounts (in
sorted order, creating missing ones), then one statement that updates every account once and
inserts every transaction, posting and idempotency record, then COMMIT.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_platform.errors import DomainError, idempotency_key_reused

from wallet import metrics
from wallet.domain import Currency, LedgerOp, plan_ledger_ops, touched_accounts
from wallet.results import BalanceView, LedgerResult, PostingView, TransactionView, decode, encode
from wallet.store import lots
from wallet.store.common import RacedOnRequestId, run_transaction

Outcome = LedgerResult | DomainError

_LOOKUP = text(
    "SELECT op, request_id, fingerprint, response FROM idempotency "
    "WHERE (op, request_id) IN (SELECT * FROM unnest(CAST(:ops AS text[]), CAST(:rids AS text[])))"
)

# DO UPDATE (a no-op write) takes the row lock; rows are processed in the given (sorted) order.
_LOCK = text(
    "INSERT INTO accounts (user_id, currency) "
    "SELECT * FROM unnest(CAST(:users AS text[]), CAST(:currencies AS smallint[])) "
    "ON CONFLICT (user_id, currency) DO UPDATE SET available = accounts.available "
    "RETURNING user_id, currency, available, held"
)

_WRITE = text(
    """
    WITH moved AS (
        UPDATE accounts a SET available = a.available + d.delta
        FROM unnest(CAST(:d_users AS text[]), CAST(:d_currencies AS smallint[]), CAST(:d_deltas AS bigint[]))
             AS d(user_id, currency, delta)
        WHERE a.user_id = d.user_id AND a.currency = d.currency AND a.available + d.delta >= 0
        RETURNING 1
    ), txns AS (
        INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference, create_time)
        SELECT t.*, CAST(:now AS timestamptz)
        FROM unnest(CAST(:t_ids AS text[]), CAST(:t_users AS text[]), CAST(:t_rids AS text[]),
                    CAST(:t_kinds AS smallint[]), CAST(:t_reasons AS text[]), CAST(:t_refs AS text[])) AS t
    ), legs AS (
        INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after)
        SELECT * FROM unnest(CAST(:p_tids AS text[]), CAST(:p_users AS text[]), CAST(:p_accounts AS text[]),
                             CAST(:p_currencies AS smallint[]), CAST(:p_amounts AS bigint[]),
                             CAST(:p_after AS bigint[]))
    ), keys AS (
        INSERT INTO idempotency (op, request_id, fingerprint, response, create_time)
        SELECT i.*, CAST(:now AS timestamptz)
        FROM unnest(CAST(:i_ops AS text[]), CAST(:i_rids AS text[]), CAST(:i_fps AS text[]),
                    CAST(:i_responses AS text[])) AS i
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM keys) AS keys
    """
)


async def apply_ledger_batch(
    engine: AsyncEngine, ops: Sequence[LedgerOp], now: datetime, points_ttl: timedelta | None = None
) -> list[Outcome]:
    """Each op's own outcome, in order: its result (new or replayed) or its domain error.
    `points_ttl` (expiry on): POINTS credits make lots expiring after it, POINTS debits consume lots."""
    return await run_transaction(lambda: _apply(engine, ops, now, points_ttl))


async def _apply(
    engine: AsyncEngine, ops: Sequence[LedgerOp], now: datetime, points_ttl: timedelta | None
) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(ops)
    committed: list[LedgerOp] = []
    async with engine.begin() as conn:
        keys = sorted({op.key for op in ops})
        stored = {
            (row.op, row.request_id): (row.fingerprint, row.response)
            for row in await conn.execute(
                _LOOKUP, {"ops": [k[0] for k in keys], "rids": [k[1] for k in keys]}
            )
        }
        first_index: dict[tuple[str, str], int] = {}
        duplicates: list[int] = []
        fresh: list[int] = []
        for i, op in enumerate(ops):
            if op.key in stored:
                fingerprint, response = stored[op.key]
                outcomes[i] = (
                    decode(LedgerResult, response)
                    if fingerprint == op.fingerprint
                    else idempotency_key_reused(op.request_id)
                )
            elif op.key in first_index:
                duplicates.append(i)
            else:
                first_index[op.key] = i
                fresh.append(i)

        fresh_ops = [ops[i] for i in fresh]
        accounts = touched_accounts(fresh_ops)
        balances: dict[tuple[str, Currency], tuple[int, int]] = {}
        if accounts:
            rows = await conn.execute(
                _LOCK, {"users": [a[0] for a in accounts], "currencies": [int(a[1]) for a in accounts]}
            )
            balances = {(r.user_id, Currency(r.currency)): (r.available, r.held) for r in rows}
        planned, deltas = plan_ledger_ops(fresh_ops, balances)

        w: dict[str, list[object]] = {
            name: []
            for name in (
                "t_ids t_users t_rids t_kinds t_reasons t_refs "
                "p_tids p_users p_accounts p_currencies p_amounts p_after i_ops i_rids i_fps i_responses"
            ).split()
        }
        for index, plan in zip(fresh, planned, strict=True):
            op = plan.op
            if plan.error is not None:
                outcomes[index] = plan.error
                continue
            tid = uuid.uuid4().hex
            after = iter(plan.balances_after)
            views: list[BalanceView] = []
            for leg in op.legs:
                w["p_tids"].append(tid)
                w["p_users"].append(leg.user_id)
                w["p_accounts"].append(leg.account)
                w["p_currencies"].append(int(leg.currency))
                w["p_amounts"].append(leg.amount)
                if leg.is_user:
                    user_id, currency, available, held = next(after)
                    views.append(BalanceView(user_id, currency, available, held))
                    w["p_after"].append(available)
                else:
                    w["p_after"].append(None)
            txn = TransactionView(
                transaction_id=tid,
                request_id=op.request_id,
                kind=op.kind,
                postings=tuple(PostingView(leg.account, leg.user_id, leg.currency, leg.amount) for leg in op.legs),
                create_time=now,
                reason=op.reason,
                reference=op.reference,
            )
            result = LedgerResult(txn, tuple(views), op.gift_rate_bps)
            for name, value in (
                ("t_ids", tid), ("t_users", op.user_id), ("t_rids", op.request_id), ("t_kinds", int(op.kind)),
                ("t_reasons", op.reason), ("t_refs", op.reference), ("i_ops", op.op),
                ("i_rids", op.request_id), ("i_fps", op.fingerprint), ("i_responses", encode(result)),
            ):
                w[name].append(value)
            outcomes[index] = result
            committed.append(op)

        if w["t_ids"]:
            moves = sorted((k, d) for k, d in deltas.items() if d)
            counts = (
                await conn.execute(
                    _WRITE,
                    {
                        **w,
                        "now": now,
                        "d_users": [k[0] for k, _ in moves],
                        "d_currencies": [int(k[1]) for k, _ in moves],
                        "d_deltas": [d for _, d in moves],
                    },
                )
            ).one()
            if counts.keys != len(w["i_rids"]):
                raise RacedOnRequestId("a request id in the batch was committed concurrently")
            if counts.moved != len(moves):
                raise RuntimeError("a planned balance change did not apply; the batch is rolled back")
            if points_ttl is not None:
                await _track_lots(conn, committed, w, now, now + points_ttl)

    for op in committed:  # after COMMIT: count only effects that are in the ledger
        metrics.ledger_committed(op)

    for i in duplicates:
        op = ops[i]
        first = ops[first_index[op.key]]
        outcomes[i] = (
            outcomes[first_index[op.key]]
            if first.fingerprint == op.fingerprint
            else idempotency_key_reused(op.request_id)
        )
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(ops)
    return done


async def _track_lots(
    conn: AsyncConnection, committed: Sequence[LedgerOp], w: dict[str, list[object]], now: datetime, expire_time: datetime
) -> None:
    """Expiry on: each POINTS credit leg makes a lot; each POINTS debit leg consumes lots, after
    the batch's new lots exist (a credit and a spend of one user may share the batch)."""
    tid_of = dict(zip(zip(w["i_ops"], w["i_rids"], strict=True), w["t_ids"], strict=True))
    new_lots: list[tuple[str, int, str]] = []
    spent: dict[str, int] = {}
    for op in committed:
        for leg in op.legs:
            if leg.is_user and leg.currency is Currency.POINTS:
                if leg.amount > 0:
                    new_lots.append((leg.user_id, leg.amount, str(tid_of[op.key])))
                else:
                    spent[leg.user_id] = spent.get(leg.user_id, 0) - leg.amount
    await lots.add_lots(conn, new_lots, now, expire_time)
    await lots.consume(conn, spent)
