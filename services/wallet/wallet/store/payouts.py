"""Diamond payouts: a hold on the creator's diamonds, committed or released by the payment result.

Lock order: payout row, then hold row, then account row (as in holds.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from points.events.v1 import wallet_pb2 as events_pb2
from points.wallet.v1 import wallet_pb2 as pb
from points_platform.errors import FailedPrecondition, NotFound
from points_platform.idempotency import idempotent
from points_platform.unit_of_work import Transaction, Transactions
from wallet import metrics, replies
from wallet.domain import HoldFacts, HoldState, Kind, PayoutState, check_commit, check_release, id_owner
from wallet.store import events
from wallet.store.holds import (
    apply_commit,
    apply_release,
    commit_transaction,
    lock_hold,
    new_hold,
    place,
    refusal,
)
from wallet.store.idempotency import LockedFirst, request_key
from wallet.store.postgres import driver
from wallet.use_cases.ports import ReserveSpec
from wallet.use_cases.results import BalanceView, HoldResult, PayoutView

_PAYOUT_USER = text("SELECT user_id FROM payouts WHERE payout_id = :id AND strpos(payout_id, ':') = 0")


async def request_payout(
    transactions: Transactions, spec: ReserveSpec, cash_value_minor: int, cash_currency: str, rate: int, now: datetime
) -> PayoutView:
    held: list[HoldResult] = []

    async def work(tx: Transaction) -> pb.RequestPayoutResponse:
        conn = tx.connection
        held.clear()
        # The hold statement of Reserve, its reply not kept (the payout's is).
        hold = new_hold(spec, now)
        placed = await place(await driver(conn), spec, hold, remember=False)
        if placed["available"] is None:
            raise refusal(spec, placed)
        await events.append(await driver(conn), [events.row(events.Posted(
            spec.user_id, spec.currency, events_pb2.TRANSACTION_EFFECT_PAYOUT_REQUESTED, 0, reference=spec.reference,
            hold_id=hold.hold_id, held_change=spec.amount, balance_after=placed["available"] + placed["held"]),
            now)], now)
        held.append(HoldResult(hold, BalanceView(spec.user_id, spec.currency, placed["available"], placed["held"])))
        row = (
            await conn.execute(
                text(
                    "INSERT INTO payouts (payout_id, user_id, diamonds, cash_value_minor, cash_currency,"
                    " cash_minor_per_thousand_diamonds, state, hold_id, create_time)"
                    " VALUES (:id, :u, :d, :cash, :cur, :rate, :s, :hold, :now) RETURNING *"
                ),
                {
                    "id": spec.reference,
                    "u": spec.user_id,
                    "d": spec.amount,
                    "cash": cash_value_minor,
                    "cur": cash_currency,
                    "rate": rate,
                    "s": int(PayoutState.PENDING),
                    "hold": hold.hold_id,
                    "now": now,
                },
            )
        ).one()
        return replies.request_payout_reply(payout_view(row))

    key = request_key("RequestPayout", spec.user_id, spec.request_id, spec.fingerprint)
    reply = await idempotent(transactions, key, pb.RequestPayoutResponse, work)
    for hold_result in held:  # after COMMIT, not on a replay
        metrics.hold_committed(hold_result)
    return replies.payout_view(reply)


async def complete_payout(
    transactions: Transactions,
    request_id: str,
    fingerprint: str,
    payout_id: str,
    success: bool,
    failure_reason: str,
    now: datetime,
) -> PayoutView:
    locked: list[Any] = []
    done: list[HoldResult] = []

    async def lock(tx: Transaction) -> None:
        """Lock the payout before its key is read (`LockedFirst`)."""
        done.clear()
        user_id = id_owner("payout", payout_id)
        if user_id is None:  # an id that names no user: found by the id alone
            user_id = (await tx.connection.execute(_PAYOUT_USER, {"id": payout_id})).scalar()
        locked[:] = [(
            await tx.connection.execute(
                text("SELECT * FROM payouts WHERE user_id = :u AND payout_id = :id FOR UPDATE"),
                {"u": user_id, "id": payout_id},
            )
        ).first()]

    async def work(tx: Transaction) -> pb.CompletePayoutResponse:
        conn = tx.connection
        payout = locked[0]
        if payout is None:  # after the key was read: a reused key is reported first
            raise NotFound("PAYOUT_NOT_FOUND", "no such payout", metadata={"payout_id": payout_id})
        if payout.state != PayoutState.PENDING:
            completed = payout.state == PayoutState.COMPLETED
            reason = "PAYOUT_ALREADY_COMPLETED" if completed else "PAYOUT_ALREADY_FAILED"
            raise FailedPrecondition(reason, "the payout already has its result")
        h = await lock_hold(conn, payout.hold_id, internal=True)
        facts = HoldFacts(h.state, h.amount, h.expire_time)
        raw = await driver(conn)
        transaction_id = ""
        if success:
            debit = check_commit(facts, 0, now)
            txn = commit_transaction(h, debit, request_id, "payout", now, Kind.PAYOUT)
            hold, moved = await apply_commit(raw, h, debit, txn)
            transaction_id = txn.transaction_id
        else:
            check_release(facts)
            txn = None
            hold, moved = await apply_release(raw, h, HoldState.RELEASED, now)
        if moved is None:  # the hold is locked and was ACTIVE: the CAS cannot miss
            raise RuntimeError(f"payout hold {h.hold_id} changed under its lock")
        done.append(HoldResult(hold, BalanceView(h.user_id, h.currency, moved["available"], moved["held"]), txn))
        row = (
            await conn.execute(
                text(
                    "UPDATE payouts SET state = :s, complete_time = :now, failure_reason = :fr,"
                    " transaction_id = :tid WHERE user_id = :u AND payout_id = :id RETURNING *"
                ),
                {
                    "s": int(PayoutState.COMPLETED if success else PayoutState.FAILED),
                    "now": now,
                    "fr": "" if success else failure_reason,
                    "tid": transaction_id,
                    "u": payout.user_id,
                    "id": payout_id,
                },
            )
        ).one()
        return replies.complete_payout_reply(payout_view(row))

    # Keyed like RefundHold: the user the payout id names, else ''.
    key = request_key("CompletePayout", id_owner("payout", payout_id) or "", request_id, fingerprint)
    reply = await idempotent(transactions, key, pb.CompletePayoutResponse, work, storage=LockedFirst(lock))
    for hold_result in done:  # after COMMIT, not on a replay
        metrics.hold_committed(hold_result)
    return replies.payout_view(reply)


def payout_view(row: Any) -> PayoutView:
    return PayoutView(
        payout_id=row.payout_id,
        creator_id=row.user_id,
        diamonds=row.diamonds,
        cash_value_minor=row.cash_value_minor,
        cash_currency=row.cash_currency,
        cash_minor_per_thousand_diamonds=row.cash_minor_per_thousand_diamonds,
        state=PayoutState(row.state),
        hold_id=row.hold_id,
        create_time=row.create_time,
        complete_time=row.complete_time,
        failure_reason=row.failure_reason,
        transaction_id=row.transaction_id,
    )
