"""Holds: reserve, commit, release and the expiry sweeper (payouts build on these).

Lock order everywhere: payout row, then hold row, then account row; the ledger batches lock
only accounts (sorted), so no two transactions wait on each other in a cycle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_platform.errors import FailedPrecondition, NotFound

from wallet.domain import (
    PAYOUTS,
    Currency,
    HoldFacts,
    HoldState,
    Kind,
    check_commit,
    check_release,
    insufficient_funds,
    spend_sink,
    user_account,
)
from wallet import metrics
from wallet.results import HoldResult, PostingView, TransactionView, decode, encode
from wallet.store import lots
from wallet.store.common import (
    balance,
    driver,
    hold_view,
    insert_transaction,
    remember,
    run_transaction,
    stored_response,
)

PAYOUT_PURPOSE = "payout"


@dataclass(frozen=True)
class ReserveSpec:
    request_id: str
    fingerprint: str
    user_id: str
    currency: Currency
    amount: int
    reference: str
    expire_time: datetime | None
    purpose: str = ""


async def reserve(engine: AsyncEngine, spec: ReserveSpec, now: datetime) -> HoldResult:
    async def attempt() -> tuple[HoldResult, bool]:
        async with engine.begin() as conn:
            replay = await stored_response(conn, "reserve", spec.request_id, spec.fingerprint)
            if replay is not None:
                return decode(HoldResult, replay), False
            result = await reserve_in(conn, spec, now)
            await remember(conn, "reserve", spec.request_id, spec.fingerprint, encode(result), now)
            return result, True

    return _counted(await run_transaction(attempt))


def _counted(outcome: tuple[HoldResult, bool]) -> HoldResult:
    """Count a hold change after its transaction committed (not a replay)."""
    result, fresh = outcome
    if fresh:
        metrics.hold_committed(result)
    return result


async def reserve_in(conn: AsyncConnection, spec: ReserveSpec, now: datetime) -> HoldResult:
    # The conditional update is the check: a short balance fails now, never at commit time.
    row = (
        await conn.execute(
            text(
                "UPDATE accounts SET available = available - :a, held = held + :a "
                "WHERE user_id = :u AND currency = :c AND available >= :a RETURNING available, held"
            ),
            {"a": spec.amount, "u": spec.user_id, "c": int(spec.currency)},
        )
    ).first()
    if row is None:
        raise insufficient_funds(spec.user_id, spec.currency)
    hold = (
        await conn.execute(
            text(
                "INSERT INTO holds (hold_id, user_id, currency, amount, committed_amount, state, reference, purpose,"
                " expire_time, create_time) VALUES (:id, :u, :c, :a, 0, :s, :ref, :p, :exp, :now) RETURNING *"
            ),
            {
                "id": f"hold_{uuid.uuid4().hex}",
                "u": spec.user_id,
                "c": int(spec.currency),
                "a": spec.amount,
                "s": int(HoldState.ACTIVE),
                "ref": spec.reference,
                "p": spec.purpose,
                "exp": spec.expire_time,
                "now": now,
            },
        )
    ).one()
    return HoldResult(hold_view(hold), balance(spec.user_id, spec.currency, row.available, row.held))


async def lock_hold(conn: AsyncConnection, hold_id: str, *, internal: bool) -> object:
    hold = (
        await conn.execute(text("SELECT * FROM holds WHERE hold_id = :id FOR UPDATE"), {"id": hold_id})
    ).first()
    if hold is None:
        raise NotFound("HOLD_NOT_FOUND", "no such hold", metadata={"hold_id": hold_id})
    if hold.purpose == PAYOUT_PURPOSE and not internal:
        raise FailedPrecondition("HOLD_MANAGED_BY_PAYOUT", "payout holds resolve through CompletePayout")
    return hold


async def commit_locked(
    conn: AsyncConnection,
    hold: object,
    amount: int,
    request_id: str,
    reason: str,
    now: datetime,
    kind: Kind,
    *,
    points_lots: bool = False,
) -> HoldResult:
    h = hold_view(hold)
    debit = check_commit(HoldFacts(h.state, h.amount, h.expire_time), amount, now)
    acc = (
        await conn.execute(
            text(
                "UPDATE accounts SET held = held - :held, available = available + :back "
                "WHERE user_id = :u AND currency = :c AND held >= :held RETURNING available, held"
            ),
            {"held": h.amount, "back": h.amount - debit, "u": h.user_id, "c": int(h.currency)},
        )
    ).one()
    if points_lots and h.currency is Currency.POINTS:  # expiry on: the commit spends the oldest lots
        await lots.consume(await driver(conn), {h.user_id: debit})
    sink = PAYOUTS if kind is Kind.PAYOUT else spend_sink(h.currency)
    txn = TransactionView(
        transaction_id=uuid.uuid4().hex,
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
    await insert_transaction(conn, txn, h.user_id, {(h.user_id, user_account(h.user_id), h.currency): acc.available})
    updated = (
        await conn.execute(
            text(
                "UPDATE holds SET state = :s, committed_amount = :amt, resolve_time = :now "
                "WHERE hold_id = :id RETURNING *"
            ),
            {"s": int(HoldState.COMMITTED), "amt": debit, "now": now, "id": h.hold_id},
        )
    ).one()
    return HoldResult(hold_view(updated), balance(h.user_id, h.currency, acc.available, acc.held), txn)


async def release_locked(conn: AsyncConnection, hold: object, now: datetime, state: HoldState) -> HoldResult:
    h = hold_view(hold)
    check_release(HoldFacts(h.state, h.amount, h.expire_time))
    acc = (
        await conn.execute(
            text(
                "UPDATE accounts SET held = held - :a, available = available + :a "
                "WHERE user_id = :u AND currency = :c AND held >= :a RETURNING available, held"
            ),
            {"a": h.amount, "u": h.user_id, "c": int(h.currency)},
        )
    ).one()
    updated = (
        await conn.execute(
            text("UPDATE holds SET state = :s, resolve_time = :now WHERE hold_id = :id RETURNING *"),
            {"s": int(state), "now": now, "id": h.hold_id},
        )
    ).one()
    return HoldResult(hold_view(updated), balance(h.user_id, h.currency, acc.available, acc.held))


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
    async def attempt() -> tuple[HoldResult, bool]:
        async with engine.begin() as conn:
            replay = await stored_response(conn, "commit", request_id, fingerprint)
            if replay is not None:
                return decode(HoldResult, replay), False
            hold = await lock_hold(conn, hold_id, internal=False)
            result = await commit_locked(
                conn, hold, amount, request_id, reason, now, Kind.HOLD_COMMIT, points_lots=points_lots
            )
            await remember(conn, "commit", request_id, fingerprint, encode(result), now)
            return result, True

    return _counted(await run_transaction(attempt))


async def release_hold(engine: AsyncEngine, request_id: str, fingerprint: str, hold_id: str, now: datetime) -> HoldResult:
    async def attempt() -> tuple[HoldResult, bool]:
        async with engine.begin() as conn:
            replay = await stored_response(conn, "release", request_id, fingerprint)
            if replay is not None:
                return decode(HoldResult, replay), False
            hold = await lock_hold(conn, hold_id, internal=False)
            result = await release_locked(conn, hold, now, HoldState.RELEASED)
            await remember(conn, "release", request_id, fingerprint, encode(result), now)
            return result, True

    return _counted(await run_transaction(attempt))


async def sweep_expired_holds(engine: AsyncEngine, now: datetime, limit: int) -> int:
    """Release up to `limit` expired active holds; concurrent sweepers skip each other's rows."""

    async def attempt() -> list[HoldResult]:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT * FROM holds WHERE state = :active AND expire_time IS NOT NULL "
                        "AND expire_time <= :now ORDER BY expire_time LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"active": int(HoldState.ACTIVE), "now": now, "n": limit},
                )
            ).all()
            return [
                await release_locked(conn, hold, now, HoldState.EXPIRED)
                for hold in sorted(rows, key=lambda r: (r.user_id, r.currency, r.hold_id))
            ]

    expired = await run_transaction(attempt)
    for result in expired:
        metrics.hold_committed(result)
    return len(expired)
