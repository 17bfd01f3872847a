"""RefundHold: give back (part of) what a committed hold debited, never more than it debited.

A refund changes only a committed hold's `refunded_amount`, so it is an ordinary transaction (not
one of the single-statement hold changes in `holds.py`): lock the hold row, then the account, post
the spend account -> user transaction, store the reply (the shared table, under the user the hold
id names, or `user_id = ''` for an id that names none: store/idempotency.py). Lock order as
everywhere: hold, then account.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.errors import DomainError, FailedPrecondition
from points_platform.idempotency import idempotent
from points_platform.unit_of_work import Transaction, Transactions
from wallet import metrics, replies
from wallet.domain import MAX_BALANCE, Currency, Kind, check_refund, filed_under, id_owner, spend_sink, user_account
from wallet.store import events, lots
from wallet.store.holds import hold_record_view, lock_hold
from wallet.store.idempotency import LockedFirst, request_key
from wallet.store.postgres import driver, new_id
from wallet.use_cases.results import BalanceView, HoldResult, HoldView, PostingView, TransactionView


async def refund_hold(
    transactions: Transactions,
    request_id: str,
    fingerprint: str,
    hold_id: str,
    amount: int,
    reason: str,
    now: datetime,
    *,
    points_ttl: timedelta | None = None,
) -> tuple[HoldResult, int]:
    """Give back (part of) a committed hold's debit: spend account -> user, in the hold's currency;
    returns the result and the amount this call gave (0 on a replay).
    The hold row is locked first (then the account), so concurrent refunds of one hold add up to at
    most its committed amount (also a CHECK), and a same-key call that waited for the lock finds the
    winner's stored reply (read after the lock, under the hold's user: `OwnedStorage`) instead of
    judging the refund again. Expiry on: refunded POINTS are a new lot."""
    locked: list[HoldView | DomainError] = []
    given: list[int] = []

    async def lock(tx: Transaction) -> None:
        given[:] = [0]
        try:
            locked[:] = [await lock_hold(tx.connection, hold_id, internal=False)]
        except DomainError as exc:  # refused after the key is read: a reused key is reported first
            locked[:] = [exc]

    async def work(tx: Transaction) -> pb.RefundHoldResponse:
        conn = tx.connection
        h = locked[0]
        if isinstance(h, DomainError):
            raise h
        refunded = check_refund(h.state, h.committed_amount, h.refunded_amount, amount)
        acc = (
            await conn.execute(
                text(
                    "UPDATE accounts SET available = available + :a WHERE user_id = :u AND currency = :c"
                    " AND available + held + :a <= :max RETURNING available, held"
                ),
                {"a": refunded, "u": h.user_id, "c": int(h.currency), "max": MAX_BALANCE},
            )
        ).first()
        if acc is None:
            raise FailedPrecondition("BALANCE_LIMIT_EXCEEDED", "the balance would exceed its limit")
        txn = TransactionView(
            transaction_id=new_id(),
            request_id=request_id,
            kind=Kind.REFUND,
            postings=(
                PostingView(spend_sink(h.currency), "", h.currency, -refunded),
                PostingView(user_account(h.user_id), h.user_id, h.currency, refunded),
            ),
            create_time=now,
            reason=reason,
            reference=h.reference,
        )
        await insert_transaction(
            conn, txn, h.user_id, {(h.user_id, user_account(h.user_id), h.currency): acc.available}
        )
        await events.append(await driver(conn), [events.row(events.Posted(
            h.user_id, h.currency, events.effect_of(Kind.REFUND), refunded, txn.transaction_id, h.reference,
            hold_id=h.hold_id, balance_after=acc.available + acc.held), now)], now)
        if points_ttl is not None and h.currency is Currency.POINTS:
            await lots.add_lots(
                await driver(conn), [(h.user_id, refunded, txn.transaction_id)], now, now + points_ttl
            )
        updated = (
            await conn.execute(
                text(
                    "UPDATE holds SET refunded_amount = refunded_amount + :a WHERE user_id = :u AND hold_id = :id"
                    " RETURNING *"
                ),
                {"a": refunded, "u": h.user_id, "id": h.hold_id},
            )
        ).one()
        balance = BalanceView(h.user_id, h.currency, acc.available, acc.held)
        given[:] = [refunded]
        return replies.refund_reply(HoldResult(hold_record_view(updated._mapping), balance, txn))

    # Keyed by the user the hold id names; an id that names none keeps the key of a request that
    # names no user, '' (store/idempotency.py), as before 0009.
    key = request_key("RefundHold", id_owner("hold", hold_id) or "", request_id, fingerprint)
    reply = await idempotent(transactions, key, pb.RefundHoldResponse, work, storage=LockedFirst(lock))
    result = replies.hold_result(reply)
    if given[0]:
        metrics.hold_refunded(result, given[0])
    return result, given[0]


async def insert_transaction(
    conn: AsyncConnection,
    txn: TransactionView,
    user_id: str,
    balances_after: dict[tuple[str, str, Currency], int],
) -> None:
    """One transaction and its postings (balance_after for user legs) in one round trip."""
    await conn.execute(
        text(
            "WITH t AS (INSERT INTO transactions (transaction_id, user_id, request_id, kind, reason, reference,"
            " create_time) VALUES (:tid, :uid, :rid, :kind, :reason, :ref, :now)) "
            "INSERT INTO postings (transaction_id, user_id, account, currency, amount, balance_after) "
            "SELECT :tid, * FROM unnest(CAST(:users AS text[]), CAST(:accounts AS text[]),"
            " CAST(:currencies AS smallint[]), CAST(:amounts AS bigint[]), CAST(:after AS bigint[]))"
        ),
        {
            "tid": txn.transaction_id,
            "uid": user_id,
            "rid": txn.request_id,
            "kind": int(txn.kind),
            "reason": txn.reason,
            "ref": txn.reference,
            "now": txn.create_time,
            "users": filed_under([(p.user_id, p.currency) for p in txn.postings], user_id),
            "accounts": [p.account for p in txn.postings],
            "currencies": [int(p.currency) for p in txn.postings],
            "amounts": [p.amount for p in txn.postings],
            "after": [balances_after.get((p.user_id, p.account, p.currency)) for p in txn.postings],
        },
    )
