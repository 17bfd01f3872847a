"""Holds: reserve, commit, release and the expiry sweeper (payouts build on these).

Lock order everywhere: payout row, then hold row, then account row; the ledger batches lock
only accounts (sorted), so no two transactions wait on each other in a cycle.

Reserve, CommitHold and ReleaseHold (the redemption hot path) run module-level statements on the
raw asyncpg connection (prepared once per connection), each effect as ONE statement with
data-modifying CTEs in its own implicit transaction (no BEGIN/COMMIT round trips):
- Reserve: 1 round trip (key lookup, conditional account UPDATE, hold INSERT, the request's row).
- Commit/Release: 2 round trips: read the hold and the key's earlier request under the hold's user
  (one snapshot, no lock), decide in Python (`check_commit` / `check_release` on the hold's
  immutable facts and the state read), then one statement whose hold UPDATE ... WHERE state =
  ACTIVE is the compare-and-set: it locks the hold, then the account (its UPDATE consumes the
  hold's RETURNING, so the order is hold -> account), writes the transaction, postings, the
  request's row and (a commit) the user's domain event in the outbox (store/events.py). If the
  CAS finds the hold no longer active, nothing was written and the call starts again (and then
  replays or fails with the new state).
Idempotency is folded (`points_platform.idempotency`, folded storage): the statement writes the
request's row in `hold_requests` — key (user_id, request_id), method, fingerprint, the hold, the
balance the account UPDATE returned and a commit's transaction id — beside its effect, and a
replay rebuilds the RPC's reply message from that row and the hold's immutable facts
(`_replay_reserve`, `_replay_resolution`; a replayed commit reads its transaction's reason), then
goes through the platform's `replayed` (same fingerprint: the reply; another:
IDEMPOTENCY_KEY_REUSED). The reply's proto bytes are never composed in SQL, and no second round
trip stores them. A same-key race fails the row's primary key (unique violation): the whole
statement rolls back and the call redoes itself, replaying the winner's reply. The hold calls'
keys are not looked up in the shared table (docs/wallet.md, Idempotency: measured).

These three statements are the only implementation of a hold's state changes: payouts run them
inside their own transaction (after locking the payout row, then the hold) and the sweeper on the
holds it locked, both without a key (a payout stores its own reply, the sweeper none).
RefundHold, which changes only a committed hold's refunded amount, is an ordinary transaction (refunds.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.errors import FailedPrecondition, NotFound
from points_platform.idempotency import Recorded, RequestKey, replayed
from points_platform.unit_of_work import Transaction, Transactions
from wallet import metrics, replies
from wallet.domain import (
    PAYOUTS,
    Currency,
    HoldFacts,
    HoldState,
    Kind,
    check_commit,
    check_release,
    filed_under,
    id_owner,
    insufficient_funds,
    owned_id,
    spend_sink,
    user_account,
    user_suspended,
)
from wallet.store import events, lots
from wallet.store.idempotency import RequestIdRaceError, request_key, run_statement
from wallet.store.postgres import driver, new_id
from wallet.use_cases.ports import PAYOUT_PURPOSE, ReserveSpec
from wallet.use_cases.results import BalanceView, HoldResult, HoldView, PostingView, TransactionView

_ACTIVE = int(HoldState.ACTIVE)

# The hold call of the user that used this key before, if any (`hold_requests`, the rows these
# statements write).
_PRIOR_CTE = """
    prior AS (
        SELECT r.fingerprint, r.hold_id, r.available AS prior_available, r.held AS prior_held
        FROM hold_requests r WHERE {guard} r.user_id = $2 AND r.request_id = $1
    )"""

_PRIOR_HOLD = """
    SELECT p.fingerprint, p.hold_id, p.prior_available, p.prior_held{outcome}
    FROM (VALUES (1)) AS one(x) LEFT JOIN prior p ON true
"""

_OUTCOME = """,
           (SELECT available FROM acc) AS available, (SELECT held FROM acc) AS held,
           EXISTS (SELECT 1 FROM suspended) AS suspended"""

# A replayed Reserve's hold (its immutable facts; the replay path only).
_PLACED_HOLD = """
    SELECT hold_id, user_id, currency, amount, reference, expire_time, create_time FROM holds
    WHERE user_id = $2 AND hold_id = $1
"""

# The user of a hold whose id names none (made before 0009, or too long a user id): by the id alone.
_HOLD_USER = "SELECT user_id FROM holds WHERE hold_id = $1 AND strpos(hold_id, ':') = 0"

# $11 = remember: keep the reply's facts in hold_requests (a payout keeps its own reply instead).
_RESERVE = f"""
    WITH {_PRIOR_CTE.format(guard="$11::boolean AND")},
    suspended AS (
        SELECT 1 FROM suspended_users WHERE user_id = $2
    ), acc AS (
        UPDATE accounts SET available = available - $4::bigint, held = held + $4::bigint
        WHERE user_id = $2 AND currency = $3::smallint AND available >= $4::bigint
          AND NOT EXISTS (SELECT 1 FROM prior) AND NOT EXISTS (SELECT 1 FROM suspended)
        RETURNING available, held
    ), hold AS (
        INSERT INTO holds (hold_id, user_id, currency, amount, committed_amount, state, reference, purpose,
                           expire_time, create_time)
        SELECT $5, $2, $3::smallint, $4::bigint, 0, {_ACTIVE}, $6, $12, $7::timestamptz, $8::timestamptz FROM acc
    ), answer AS (
        INSERT INTO hold_requests (user_id, request_id, method, fingerprint, hold_id, available, held, created_time)
        SELECT $2, $1, $9, $10, $5, acc.available, acc.held, $8::timestamptz FROM acc WHERE $11::boolean
    )
    {_PRIOR_HOLD.format(outcome=_OUTCOME)}"""

_RESERVE_AGAIN = f"WITH {_PRIOR_CTE.format(guard='')} {_PRIOR_HOLD.format(outcome='')}"

# The hold (its user completes the key) and the calls that named this key before, in one
# snapshot; no lock.
_LOOKUP = """
    SELECT h.hold_id, h.user_id, h.currency, h.amount, h.committed_amount, h.state, h.reference,
           h.expire_time, h.create_time, h.resolve_time, h.refunded_amount, h.purpose,
           r.fingerprint, r.method, r.hold_id AS request_hold_id,
           r.available AS prior_available, r.held AS prior_held, r.transaction_id
    FROM (VALUES (1)) AS one(x)
    LEFT JOIN holds h ON h.user_id = $3 AND h.hold_id = $2
    LEFT JOIN hold_requests r ON r.user_id = h.user_id AND r.request_id = $1
"""

# A replayed commit's transaction reason (the rest of its transaction follows from the hold).
_COMMIT_REASON = "SELECT reason FROM transactions WHERE user_id = $2 AND transaction_id = $1"

# $2 = the amount debited; the account gets back what was held and not debited. held >= 0 is a
# CHECK: an account that did not hold the amount fails the whole statement. $16 = remember.
# $17 .. $20: the user's transaction_posted event, its balance appended here (store/events.py).
_COMMIT = f"""
    WITH hold AS (
        UPDATE holds SET state = {int(HoldState.COMMITTED)}, committed_amount = $2::bigint, resolve_time = $3
        WHERE user_id = $5 AND hold_id = $1 AND state = {_ACTIVE}
        RETURNING user_id, currency, amount
    ), acc AS (
        UPDATE accounts a SET held = a.held - h.amount, available = a.available + (h.amount - $2::bigint)
        FROM hold h WHERE a.user_id = h.user_id AND a.currency = h.currency
        RETURNING a.available, a.held
    ), txn AS (
        INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference, create_time)
        SELECT $4, $5, $6, $7::smallint, $8, $9, $3 FROM acc
    ), legs AS (
        INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after)
        SELECT $4, p.user_id, p.account, p.currency, p.amount,
               CASE WHEN p.account = 'user:' || p.user_id THEN acc.available END
        FROM acc, unnest($10::text[], $11::text[], $12::smallint[], $13::bigint[])
                  AS p(user_id, account, currency, amount)
    ), answer AS (
        INSERT INTO hold_requests (user_id, request_id, method, fingerprint, hold_id, available, held,
                                   transaction_id, created_time)
        SELECT $5, $6, $14, $15, $1, acc.available, acc.held, $4, $3 FROM acc WHERE $16::boolean
    ), event AS (
        INSERT INTO outbox (event_id, subject, partition, payload, created_time)
        SELECT $17::uuid, $18, $19::smallint, $20::bytea || {events.TAIL.format(balance="acc.available + acc.held")}, $3
        FROM acc
    )
    SELECT available, held FROM acc
"""

# $7 = the final state (RELEASED, or EXPIRED by the sweeper), $8 = remember.
_RELEASE = f"""
    WITH hold AS (
        UPDATE holds SET state = $7::smallint, resolve_time = $2
        WHERE user_id = $4 AND hold_id = $1 AND state = {_ACTIVE}
        RETURNING user_id, currency, amount
    ), acc AS (
        UPDATE accounts a SET held = a.held - h.amount, available = a.available + h.amount
        FROM hold h WHERE a.user_id = h.user_id AND a.currency = h.currency
        RETURNING a.available, a.held
    ), answer AS (
        INSERT INTO hold_requests (user_id, request_id, method, fingerprint, hold_id, available, held, created_time)
        SELECT $4, $3, $5, $6, $1, acc.available, acc.held, $2 FROM acc WHERE $8::boolean
    )
    SELECT available, held FROM acc
"""


def new_hold(spec: ReserveSpec, now: datetime) -> HoldView:
    return HoldView(
        hold_id=owned_id("hold", new_id(), spec.user_id),
        user_id=spec.user_id,
        currency=spec.currency,
        amount=spec.amount,
        committed_amount=0,
        state=HoldState.ACTIVE,
        reference=spec.reference,
        expire_time=spec.expire_time,
        create_time=now,
        resolve_time=None,
    )


async def place(
    conn: asyncpg.Connection, spec: ReserveSpec, hold: HoldView, *, remember: bool
) -> asyncpg.Record:
    """The reserve statement: available -> held if the balance allows and the user is not suspended
    (available is NULL if not; `suspended` says which), the hold row, and (remember) the request's
    row in hold_requests; or the row of an earlier call with the key (`fingerprint` not NULL)."""
    key = reserve_key(spec)
    row = await conn.fetchrow(
        _RESERVE, spec.request_id, spec.user_id, int(spec.currency), spec.amount, hold.hold_id,
        spec.reference, spec.expire_time, hold.create_time, key.method, key.fingerprint, remember, spec.purpose,
    )
    assert row is not None
    return row


def reserve_key(spec: ReserveSpec) -> RequestKey:
    return request_key("Reserve", spec.user_id, spec.request_id, spec.fingerprint)


async def reserve(engine: AsyncEngine, spec: ReserveSpec, now: datetime) -> HoldResult:
    hold = new_hold(spec, now)
    key = reserve_key(spec)

    async def attempt() -> tuple[HoldResult, bool]:
        async with engine.connect() as sa_conn:
            try:
                row = await place(await driver(sa_conn), spec, hold, remember=True)
            except asyncpg.UniqueViolationError as exc:
                raise RequestIdRaceError(spec.request_id) from exc
        if row["fingerprint"] is not None:
            return await _replay_reserve(engine, row, key), False
        if row["available"] is None:
            # `prior` read the snapshot taken before the account UPDATE waited for its lock: a
            # same-key Reserve may have committed meanwhile (and taken the balance). Look again.
            async with engine.connect() as sa_conn:
                again = await (await driver(sa_conn)).fetchrow(_RESERVE_AGAIN, spec.request_id, spec.user_id)
            if again is not None and again["fingerprint"] is not None:
                return await _replay_reserve(engine, again, key), False
            raise refusal(spec, row)
        return HoldResult(hold, BalanceView(spec.user_id, spec.currency, row["available"], row["held"])), True

    return _counted(await run_statement(attempt))


def refusal(spec: ReserveSpec, row: asyncpg.Record) -> FailedPrecondition:
    """Why the reserve statement placed no hold: the user is suspended, or short of funds."""
    return user_suspended(spec.user_id) if row["suspended"] else insufficient_funds(spec.user_id, spec.currency)


async def _replay_reserve(engine: AsyncEngine, row: asyncpg.Record, key: RequestKey) -> HoldResult:
    """The reply of the hold call that used the key, if a Reserve: rebuilt from its hold (as it was
    placed) and the balance kept beside it; IDEMPOTENCY_KEY_REUSED for another request."""
    reply = pb.ReserveResponse()
    if bytes(row["fingerprint"]) == key.fingerprint:  # else refused by `replayed` below
        async with engine.connect() as sa_conn:
            h = await (await driver(sa_conn)).fetchrow(_PLACED_HOLD, row["hold_id"], key.user_id)
        assert h is not None  # written with its request's row
        placed = HoldView(
            hold_id=h["hold_id"], user_id=h["user_id"], currency=Currency(h["currency"]), amount=h["amount"],
            committed_amount=0, state=HoldState.ACTIVE, reference=h["reference"], expire_time=h["expire_time"],
            create_time=h["create_time"], resolve_time=None,
        )
        reply = replies.reserve_reply(
            HoldResult(placed, BalanceView(placed.user_id, placed.currency, row["prior_available"], row["prior_held"]))
        )
    return replies.hold_result(replayed(Recorded(bytes(row["fingerprint"]), reply), key, pb.ReserveResponse))


async def _replay_resolution(conn: asyncpg.Connection, row: asyncpg.Record, key: RequestKey) -> HoldResult:
    """The reply of the CommitHold or ReleaseHold that used the key on this hold, rebuilt from the
    hold (its resolution never changes) and the balance and transaction kept beside it;
    IDEMPOTENCY_KEY_REUSED for another request."""
    reply_type, encode = replies.HOLD_REPLIES[key.method.rsplit(".", 1)[1]]
    reply: Message = reply_type()
    if row["method"] == key.method and row["request_hold_id"] == row["hold_id"]:
        h = hold_record_view(row)
        resolved = replace(h, refunded_amount=0)  # as it was answered: refunds come later
        txn = None
        if h.state is HoldState.COMMITTED:
            reason = await conn.fetchval(_COMMIT_REASON, row["transaction_id"], h.user_id)
            committed = commit_transaction(h, h.committed_amount, key.request_id, reason,
                                           h.resolve_time or h.create_time, Kind.HOLD_COMMIT)
            txn = replace(committed, transaction_id=row["transaction_id"])
        reply = encode(HoldResult(resolved, BalanceView(h.user_id, h.currency, row["prior_available"],
                                                        row["prior_held"]), txn))
    return replies.hold_result(replayed(Recorded(bytes(row["fingerprint"]), reply), key, reply_type))


async def _lookup(conn: asyncpg.Connection, method: str, request_id: str, digest: str, hold_id: str) -> (
    HoldResult | tuple[HoldView, RequestKey]
):
    """The replayed reply, or the hold as it is now (not locked) and the request's key (the hold's
    user completes it); refuses unknown and payout holds."""
    user_id = await hold_user(conn, hold_id)
    row = await conn.fetchrow(_LOOKUP, request_id, hold_id, user_id)
    assert row is not None
    if row["hold_id"] is None:
        raise NotFound("HOLD_NOT_FOUND", "no such hold", metadata={"hold_id": hold_id})
    key = request_key(method, row["user_id"], request_id, digest)
    if row["fingerprint"] is not None:
        return await _replay_resolution(conn, row, key)
    if row["purpose"] == PAYOUT_PURPOSE:
        raise FailedPrecondition("HOLD_MANAGED_BY_PAYOUT", "payout holds resolve through CompletePayout")
    return hold_record_view(row), key


def _counted(outcome: tuple[HoldResult, bool]) -> HoldResult:
    """Count a hold change after its transaction committed (not a replay)."""
    result, fresh = outcome
    if fresh:
        metrics.hold_committed(result)
    return result


async def hold_user(conn: asyncpg.Connection, hold_id: str) -> str | None:
    """The user of a hold: the one its id names, else found by the id alone (None: no such hold)."""
    owner = id_owner("hold", hold_id)
    if owner is not None:
        return owner
    user_id: str | None = await conn.fetchval(_HOLD_USER, hold_id)
    return user_id


async def lock_hold(conn: AsyncConnection, hold_id: str, *, internal: bool) -> HoldView:
    """The hold, locked (payouts and refunds: the payout row, then the hold, then the account)."""
    user_id = await hold_user(await driver(conn), hold_id)
    hold = (
        await conn.execute(
            text("SELECT * FROM holds WHERE user_id = :u AND hold_id = :id FOR UPDATE"), {"u": user_id, "id": hold_id}
        )
    ).first()
    if hold is None:
        raise NotFound("HOLD_NOT_FOUND", "no such hold", metadata={"hold_id": hold_id})
    if hold.purpose == PAYOUT_PURPOSE and not internal:
        raise FailedPrecondition("HOLD_MANAGED_BY_PAYOUT", "payout holds resolve through CompletePayout")
    return hold_record_view(hold._mapping)


def commit_transaction(
    h: HoldView, debit: int, request_id: str, reason: str, now: datetime, kind: Kind
) -> TransactionView:
    """The debit a commit posts: the user's account to the spend (or payouts) account."""
    sink = PAYOUTS if kind is Kind.PAYOUT else spend_sink(h.currency)
    return TransactionView(
        transaction_id=new_id(),
        request_id=request_id,
        kind=kind,
        postings=(
            PostingView(user_account(h.user_id), h.user_id, h.currency, -debit),
            PostingView(sink, "", h.currency, debit),
        ),
        create_time=now,
        reason=reason,
        reference=h.reference,
    )


async def apply_commit(
    conn: asyncpg.Connection, h: HoldView, debit: int, txn: TransactionView, key: RequestKey | None = None
) -> tuple[HoldView, asyncpg.Record | None]:
    """The commit statement (CAS on ACTIVE) debiting `debit` (txn's amount): the committed hold and
    its account's (available, held), or None when the hold is no longer active (nothing written).
    With a `key`, the request's row in hold_requests too (a payout keeps its own reply instead)."""
    hold = replace(h, state=HoldState.COMMITTED, committed_amount=debit, resolve_time=txn.create_time)
    event = events.row(events.Posted(
        h.user_id, h.currency, events.effect_of(txn.kind), -debit, txn.transaction_id, h.reference,
        hold_id=h.hold_id, held_change=-h.amount), txn.create_time)
    row = await conn.fetchrow(
        _COMMIT, h.hold_id, debit, txn.create_time, txn.transaction_id, h.user_id, txn.request_id, int(txn.kind),
        txn.reason, h.reference,
        filed_under([(p.user_id, p.currency) for p in txn.postings], h.user_id), [p.account for p in txn.postings],
        [int(p.currency) for p in txn.postings], [p.amount for p in txn.postings],
        key.method if key else "", key.fingerprint if key else b"", key is not None,
        event.event_id, event.subject, event.partition, event.payload,
    )
    return hold, row


async def apply_release(
    conn: asyncpg.Connection, h: HoldView, state: HoldState, now: datetime, key: RequestKey | None = None
) -> tuple[HoldView, asyncpg.Record | None]:
    """The release statement (CAS on ACTIVE), ending in `state` (RELEASED, or EXPIRED); with a
    `key`, the request's row in hold_requests too."""
    hold = replace(h, state=state, resolve_time=now)
    row = await conn.fetchrow(
        _RELEASE, h.hold_id, now, key.request_id if key else "", h.user_id, key.method if key else "",
        key.fingerprint if key else b"", int(state), key is not None,
    )
    return hold, row


# A resolution's statement: the hold after it and the account row it returned (None: the hold was
# resolved since it was read, nothing written), with a commit's transaction.
Resolution = tuple[HoldView, asyncpg.Record | None, TransactionView | None]


async def commit_hold(
    engine: AsyncEngine,
    request_id: str,
    fingerprint: str,
    hold_id: str,
    amount: int,
    reason: str,
    now: datetime,
    *,
    points_lots: bool = False,
) -> HoldResult:
    async def commit(conn: asyncpg.Connection, h: HoldView, key: RequestKey) -> Resolution:
        # Amount, expiry, user and currency of a hold never change: only the state can, and the
        # statement's CAS on it makes this decision hold at the moment of the write.
        debit = check_commit(HoldFacts(h.state, h.amount, h.expire_time), amount, now)
        txn = commit_transaction(h, debit, request_id, reason, now, Kind.HOLD_COMMIT)
        if points_lots and h.currency is Currency.POINTS:
            # Expiry on: the commit spends the oldest lots, after the account row is locked
            # (a fresh snapshot of the lots), in the same transaction.
            async with conn.transaction():
                hold, row = await apply_commit(conn, h, debit, txn, key)
                if row is not None:
                    await lots.consume(conn, {h.user_id: debit})
        else:
            hold, row = await apply_commit(conn, h, debit, txn, key)
        return hold, row, txn

    return await _resolve(engine, "CommitHold", request_id, fingerprint, hold_id, commit)


async def release_hold(
    engine: AsyncEngine, request_id: str, fingerprint: str, hold_id: str, now: datetime
) -> HoldResult:
    async def release(conn: asyncpg.Connection, h: HoldView, key: RequestKey) -> Resolution:
        check_release(HoldFacts(h.state, h.amount, h.expire_time))
        hold, row = await apply_release(conn, h, HoldState.RELEASED, now, key)
        return hold, row, None

    return await _resolve(engine, "ReleaseHold", request_id, fingerprint, hold_id, release)


async def _resolve(
    engine: AsyncEngine, method: str, request_id: str, fingerprint: str, hold_id: str,
    resolve: Callable[[asyncpg.Connection, HoldView, RequestKey], Awaitable[Resolution]],
) -> HoldResult:
    """CommitHold or ReleaseHold, one statement outside a unit of work: the replayed reply, else
    `resolve`'s statement, which writes the key's `hold_requests` row beside its effect (folded
    storage). A same-key race lost on that row, or a hold resolved since it was read, is looked at
    again (and then replays the winner or refuses)."""

    async def attempt() -> tuple[HoldResult, bool]:
        async with engine.connect() as sa_conn:
            conn = await driver(sa_conn)
            found = await _lookup(conn, method, request_id, fingerprint, hold_id)
            if isinstance(found, HoldResult):
                return found, False
            h, key = found
            try:
                hold, row, txn = await resolve(conn, h, key)
            except asyncpg.UniqueViolationError as exc:
                raise RequestIdRaceError(request_id) from exc
        if row is None:
            raise RequestIdRaceError(request_id)
        return HoldResult(hold, BalanceView(h.user_id, h.currency, row["available"], row["held"]), txn), True

    return _counted(await run_statement(attempt))


async def sweep_expired_holds(transactions: Transactions, now: datetime, limit: int) -> int:
    """Release up to `limit` expired active holds; concurrent sweepers skip each other's rows."""

    async def attempt(tx: Transaction) -> list[HoldResult]:
        conn = tx.connection
        rows = (
            await conn.execute(
                text(
                    "SELECT * FROM holds WHERE state = :active AND expire_time IS NOT NULL "
                    "AND expire_time <= :now ORDER BY expire_time LIMIT :n FOR UPDATE SKIP LOCKED"
                ),
                {"active": int(HoldState.ACTIVE), "now": now, "n": limit},
            )
        ).all()
        raw = await driver(conn)
        expired: list[HoldResult] = []
        views = (hold_record_view(r._mapping) for r in rows)
        for h in sorted(views, key=lambda h: (h.user_id, h.currency, h.hold_id)):
            hold, row = await apply_release(raw, h, HoldState.EXPIRED, now)
            if row is None:  # locked and ACTIVE: the CAS cannot miss
                raise RuntimeError(f"expired hold {h.hold_id} changed under its lock")
            expired.append(HoldResult(hold, BalanceView(h.user_id, h.currency, row["available"], row["held"])))
        return expired

    expired = await transactions.run(attempt)
    for result in expired:
        metrics.hold_committed(result)
    return len(expired)


def hold_record_view(r: Any) -> HoldView:
    """A hold row by column name: an asyncpg record, or a SQLAlchemy row's `._mapping`."""
    return HoldView(
        hold_id=r["hold_id"],
        user_id=r["user_id"],
        currency=Currency(r["currency"]),
        amount=r["amount"],
        committed_amount=r["committed_amount"],
        state=HoldState(r["state"]),
        reference=r["reference"],
        expire_time=r["expire_time"],
        create_time=r["create_time"],
        resolve_time=r["resolve_time"],
        refunded_amount=r["refunded_amount"],
    )
