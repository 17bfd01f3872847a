"""Applying a batch of ledger operations (credits, debits, gifts) in one DB transaction.

Round trips per batch, whatever its size: BEGIN, lock the touched accounts (in sorted order,
creating missing ones) and look up the request ids and payment references in one statement, then
one statement that updates every account once and inserts every transaction, posting, stored reply
(the shared idempotency table, proto bytes of the RPC's reply), payment reference and domain event
(the outbox, one per user leg: store/events.py), then COMMIT.
The statements run on the raw asyncpg connection (prepared once per connection).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from points_platform.errors import Aborted, DomainError, idempotency_key_reused
from points_platform.idempotency import Recorded, RequestKey, replayed
from points_platform.unit_of_work import Transaction, Transactions
from wallet import metrics, replies
from wallet.domain import (
    Currency,
    LedgerOp,
    PaidCredit,
    PaymentKey,
    filed_under,
    plan_ledger_ops,
    touched_accounts,
)
from wallet.store import events, lots
from wallet.store.idempotency import PaymentReferenceRaceError, RequestIdRaceError, request_key
from wallet.store.postgres import new_id
from wallet.use_cases.ports import LedgerOutcome
from wallet.use_cases.results import BalanceView, LedgerResult, PostingView, TransactionView

# Raw asyncpg statements ($n parameters): asyncpg prepares each once per connection and reuses it,
# so the hot path builds and compiles no SQL.
#
# Lock and look up in one round trip: the upsert (DO UPDATE, a no-op write, takes the row lock;
# rows are processed in the given sorted order, missing accounts are created) and the stored
# answers of the batch's request ids. Kind 1 rows are accounts, kind 2 rows stored answers, kind 3
# payment references already credited, kind 4 the suspended users among those the batch's ops name.
_LOCK_AND_LOOKUP = """
    WITH locked AS (
        INSERT INTO accounts (user_id, currency)
        SELECT * FROM unnest($1::text[], $2::smallint[])
        ON CONFLICT (user_id, currency) DO UPDATE SET available = accounts.available
        RETURNING user_id, currency, available, held
    )
    SELECT 1 AS kind, user_id AS a, NULL::text AS b, currency::int AS currency, available, held,
           NULL::text AS c, NULL::text AS d, NULL::bytea AS fingerprint, NULL::bytea AS reply
    FROM locked
    UNION ALL
    SELECT 2, user_id, request_id, NULL, NULL, NULL, NULL, NULL, fingerprint, reply FROM idempotency
    WHERE (user_id, request_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
    UNION ALL
    SELECT 3, user_id, reference, currency::int, NULL, NULL, transaction_id, request_id, NULL, NULL
    FROM payment_references
    WHERE (user_id, currency, reference) IN (SELECT * FROM unnest($5::text[], $6::smallint[], $7::text[]))
    UNION ALL
    SELECT 4, user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM suspended_users
    WHERE user_id = ANY($8::text[])
"""

# The same keys in a fresh snapshot.
_LOOKUP_AGAIN = """
    SELECT user_id, request_id, fingerprint, reply FROM idempotency
    WHERE (user_id, request_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""

_WRITE = f"""
    WITH moved AS (
        UPDATE accounts a SET available = a.available + d.delta
        FROM unnest($1::text[], $2::smallint[], $3::bigint[]) AS d(user_id, currency, delta)
        WHERE a.user_id = d.user_id AND a.currency = d.currency AND a.available + d.delta >= 0
        RETURNING 1
    ), txns AS (
        INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference, create_time)
        SELECT t.*, $4::timestamptz
        FROM unnest($5::text[], $6::text[], $7::text[], $8::smallint[], $9::text[], $10::text[]) AS t
    ), legs AS (
        INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after)
        SELECT * FROM unnest($11::text[], $12::text[], $13::text[], $14::smallint[], $15::bigint[], $16::bigint[])
    ), keys AS (
        INSERT INTO idempotency (user_id, request_id, method, fingerprint, reply, created_time)
        SELECT i.*, $4::timestamptz
        FROM unnest($17::text[], $18::text[], $19::text[], $20::bytea[], $21::bytea[]) AS i
        ON CONFLICT DO NOTHING
        RETURNING 1
    ), paid AS (
        INSERT INTO payment_references (user_id, currency, reference, transaction_id, request_id, create_time)
        SELECT r.*, $4::timestamptz
        FROM unnest($22::text[], $23::smallint[], $24::text[], $25::text[], $26::text[]) AS r
        ON CONFLICT DO NOTHING
        RETURNING 1
    ), events AS ({events.arm(27, "$4::timestamptz")}
    )
    SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM keys) AS keys,
           (SELECT count(*) FROM paid) AS paid
"""


async def apply_ledger_batch(
    transactions: Transactions, ops: Sequence[LedgerOp], now: datetime, points_ttl: timedelta | None = None
) -> list[LedgerOutcome]:
    """Each op's own outcome, in order: its result (new or replayed) or its domain error.
    `points_ttl` (expiry on): POINTS credits make lots expiring after it, POINTS debits consume lots."""
    outcomes, committed = await transactions.run(lambda tx: _apply(tx, ops, now, points_ttl))
    for op in committed:  # after COMMIT: count only effects that are in the ledger
        metrics.ledger_committed(op)
    return outcomes


async def _apply(
    tx: Transaction, ops: Sequence[LedgerOp], now: datetime, points_ttl: timedelta | None
) -> tuple[list[LedgerOutcome], list[LedgerOp]]:
    """The batch in `tx`: each op's outcome, and the ops it applied."""
    outcomes: list[LedgerOutcome | None] = [None] * len(ops)
    committed: list[LedgerOp] = []
    conn = await tx.driver()
    keys = sorted({op.key for op in ops})
    # The platform's request key of each op (fingerprint over the method and the command digest);
    # looked up in the shared table only (hold calls keep theirs in hold_requests, docs/wallet.md).
    request_keys = [request_key(op.method, op.user_id, op.request_id, op.fingerprint) for op in ops]
    payments = sorted({op.payment_key for op in ops if op.payment_key is not None})
    # Every touched account is locked, replays' included: one round trip for the locks, the
    # stored answers and the payment references already credited.
    accounts = touched_accounts(ops)
    balances: dict[tuple[str, Currency], tuple[int, int]] = {}
    stored: dict[tuple[str, str], Recorded] = {}
    paid: dict[PaymentKey, PaidCredit] = {}
    suspended: set[str] = set()
    suspendable = sorted({op.refused_if_suspended for op in ops if op.refused_if_suspended})
    for row in await conn.fetch(
        _LOCK_AND_LOOKUP,
        [a[0] for a in accounts],
        [int(a[1]) for a in accounts],
        [k[0] for k in keys],
        [k[1] for k in keys],
        [p[0] for p in payments],
        [int(p[1]) for p in payments],
        [p[2] for p in payments],
        suspendable,
    ):
        if row[0] == 1:
            balances[(row[1], Currency(row[3]))] = (row[4], row[5])
        elif row[0] == 2:
            stored[(row[1], row[2])] = Recorded(bytes(row[8]), bytes(row[9]))
        elif row[0] == 3:
            paid[(row[1], Currency(row[3]), row[2])] = PaidCredit(row[6], row[7])
        else:
            suspended.add(row[1])
    first_index: dict[tuple[str, str], int] = {}
    duplicates: list[int] = []
    fresh: list[int] = []
    for i, op in enumerate(ops):
        if op.key in stored:
            outcomes[i] = _replay(stored[op.key], request_keys[i], op)
        elif op.key in first_index:
            duplicates.append(i)
        else:
            first_index[op.key] = i
            fresh.append(i)

    # A payment reference credited by a concurrent batch that committed while this one waited
    # for the account lock is not in that lookup's snapshot: the write's insert into
    # payment_references then conflicts, and the batch is redone (PaymentReferenceRaceError).
    planned, deltas = plan_ledger_ops(
        [ops[i] for i in fresh],
        balances,
        paid=paid,
        transaction_ids=[new_id() for _ in fresh],
        suspended=suspended,
    )
    # The lookup above read the snapshot taken before the account locks were granted: a
    # concurrent batch holding the same key may have committed meanwhile (and spent the
    # balance). A refused op is looked up again (a fresh snapshot, after the locks).
    refused = {ops[i].key: i for i, plan in zip(fresh, planned, strict=True) if plan.error is not None}
    if refused:
        for row in await conn.fetch(_LOOKUP_AGAIN, [k[0] for k in refused], [k[1] for k in refused]):
            index = refused[(row[0], row[1])]
            recorded = Recorded(bytes(row[2]), bytes(row[3]))
            outcomes[index] = _replay(recorded, request_keys[index], ops[index])
    w = _Rows()
    for index, plan in zip(fresh, planned, strict=True):
        if plan.error is not None:
            if outcomes[index] is None:
                outcomes[index] = plan.error
            continue
        outcomes[index] = w.add(plan.op, request_keys[index], plan.transaction_id, plan.balances_after, now)
        committed.append(plan.op)

    if committed:
        moves = sorted((k, d) for k, d in deltas.items() if d)
        counts = await conn.fetchrow(
            _WRITE,
            [k[0] for k, _ in moves],
            [int(k[1]) for k, _ in moves],
            [d for _, d in moves],
            now,
            *w.columns(),
        )
        assert counts is not None
        if counts["keys"] != len(committed):
            raise RequestIdRaceError("a request id in the batch was committed concurrently")
        if counts["paid"] != len(w.r_users):
            raise PaymentReferenceRaceError("a payment reference in the batch was credited concurrently")
        if counts["moved"] != len(moves):
            raise RuntimeError("a planned balance change did not apply; the batch is rolled back")
        if points_ttl is not None:
            await _track_lots(conn, committed, w.op_tids, now, now + points_ttl)

    for i in duplicates:
        op = ops[i]
        first_outcome = outcomes[first_index[op.key]]
        if request_keys[first_index[op.key]].fingerprint == request_keys[i].fingerprint:
            outcomes[i] = first_outcome
        elif isinstance(first_outcome, DomainError):
            # The first call with this key was refused, so nothing is stored under it: this one
            # was never judged. It retries alone (then it is evaluated on its own parameters).
            outcomes[i] = Aborted("CONCURRENT_REQUEST", "a concurrent call with this request_id was in progress")
        else:
            outcomes[i] = idempotency_key_reused(op.request_id)
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(ops)
    return done, committed


def _replay(recorded: Recorded, key: RequestKey, op: LedgerOp) -> LedgerOutcome:
    """The stored reply of the op's key as the op's result, or IDEMPOTENCY_KEY_REUSED (the op's own
    outcome: its neighbours in the batch go on)."""
    try:
        return replies.ledger_result(replayed(recorded, key, replies.LEDGER_REPLIES[op.method][0]))
    except DomainError as exc:
        return exc


class _Rows:
    """The column arrays of the batch's write statement, and each op's result."""

    def __init__(self) -> None:
        self.op_tids: list[str] = []  # each op's transaction id (t_ids repeats a gift's)
        self.t_ids: list[str] = []
        self.t_users: list[str] = []
        self.t_rids: list[str] = []
        self.t_kinds: list[int] = []
        self.t_reasons: list[str] = []
        self.t_refs: list[str] = []
        self.p_tids: list[str] = []
        self.p_users: list[str] = []
        self.p_accounts: list[str] = []
        self.p_currencies: list[int] = []
        self.p_amounts: list[int] = []
        self.p_after: list[int | None] = []
        self.i_users: list[str] = []
        self.i_rids: list[str] = []
        self.i_methods: list[str] = []
        self.i_fps: list[bytes] = []
        self.i_replies: list[bytes] = []
        self.r_users: list[str] = []
        self.r_currencies: list[int] = []
        self.r_refs: list[str] = []
        self.r_tids: list[str] = []
        self.r_rids: list[str] = []
        self.events: list[events.EventRow] = []

    def add(
        self,
        op: LedgerOp,
        key: RequestKey,
        tid: str,
        balances_after: Sequence[tuple[str, Currency, int, int]],
        now: datetime,
    ) -> LedgerResult:
        after = iter(balances_after)
        views: list[BalanceView] = []
        filed = filed_under([(leg.user_id, leg.currency) for leg in op.legs], op.user_id)
        for leg, filed_user in zip(op.legs, filed, strict=True):
            self.p_tids.append(tid)
            self.p_users.append(filed_user)
            self.p_accounts.append(leg.account)
            self.p_currencies.append(int(leg.currency))
            self.p_amounts.append(leg.amount)
            if leg.is_user:
                user_id, currency, available, held = next(after)
                views.append(BalanceView(user_id, currency, available, held))
                self.p_after.append(available)
            else:
                self.p_after.append(None)
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
        self.events.extend(events.of_ledger_op(op, tid, balances_after, now))
        self.op_tids.append(tid)
        for user_id in dict.fromkeys([op.user_id, *filed]):  # a row under each user it touches
            self.t_ids.append(tid)
            self.t_users.append(user_id)
            self.t_rids.append(op.request_id)
            self.t_kinds.append(int(op.kind))
            self.t_reasons.append(op.reason)
            self.t_refs.append(op.reference)
        self.i_users.append(key.user_id)
        self.i_rids.append(key.request_id)
        self.i_methods.append(key.method)
        self.i_fps.append(key.fingerprint)
        self.i_replies.append(replies.LEDGER_REPLIES[op.method][1](result).SerializeToString(deterministic=True))
        if op.payment_key is not None:
            user_id, currency, reference = op.payment_key
            self.r_users.append(user_id)
            self.r_currencies.append(int(currency))
            self.r_refs.append(reference)
            self.r_tids.append(tid)
            self.r_rids.append(op.request_id)
        return result

    def columns(self) -> tuple[Sequence[object], ...]:
        """In the order of the write statement's $5 .. $30."""
        return (
            self.t_ids, self.t_users, self.t_rids, self.t_kinds, self.t_reasons, self.t_refs,
            self.p_tids, self.p_users, self.p_accounts, self.p_currencies, self.p_amounts, self.p_after,
            self.i_users, self.i_rids, self.i_methods, self.i_fps, self.i_replies,
            self.r_users, self.r_currencies, self.r_refs, self.r_tids, self.r_rids,
            *events.columns(self.events),
        )


async def _track_lots(
    conn: asyncpg.Connection, committed: Sequence[LedgerOp], tids: Sequence[str], now: datetime, expire_time: datetime
) -> None:
    """Expiry on: each POINTS credit leg makes a lot; each POINTS debit leg consumes lots, after
    the batch's new lots exist (a credit and a spend of one user may share the batch)."""
    new_lots: list[tuple[str, int, str]] = []
    spent: dict[str, int] = {}
    for op, tid in zip(committed, tids, strict=True):
        for leg in op.legs:
            if leg.is_user and leg.currency is Currency.POINTS:
                if leg.amount > 0:
                    new_lots.append((leg.user_id, leg.amount, tid))
                else:
                    spent[leg.user_id] = spent.get(leg.user_id, 0) - leg.amount
    await lots.add_lots(conn, new_lots, now, expire_time)
    await lots.consume(conn, spent)
