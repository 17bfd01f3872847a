"""Saga rows: create (idempotent by request_id), transition under a lease, claim due sagas for recovery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import and_, func, insert, or_, select, update

from points_platform.group_commit import GroupCommitter
from points_platform.unit_of_work import Transaction, Transactions
from redemption.domain.item import ItemKind, ItemSnapshot
from redemption.domain.saga import Mode, Outcome, Saga, State, Step
from redemption.store import saga_batches, saga_sql
from redemption.store.events import RedemptionEvents, insert_rows
from redemption.store.tables import saga_steps, sagas
from redemption.use_cases.records import DETAIL_LENGTH, Log, SagaRecord, StepRecord, Transition

if TYPE_CHECKING:
    import asyncpg


def _saga_values(saga: Saga) -> dict[str, Any]:
    return {
        "state": saga.state.value,
        "mode": saga.mode.value,
        "step": saga.step.value if saga.step else None,
        "cancel_reason": saga.cancel_reason,
        "item": _item_values(saga.item) if saga.item else None,
        "currency": saga.currency,
        "amount": saga.amount,
        "reservation_id": saga.reservation_id,
        "reserved_at": saga.reserved_at,
        "hold_id": saga.hold_id,
        "entitlements_granted": saga.entitlements_granted,
        "funds_committed": saga.funds_committed,
        "stock_attempt": saga.stock_attempt,
        "notes": list(saga.notes),
    }


_ITEM_TIMES = ("sales_close_time", "valid_until")


def _item_values(item: ItemSnapshot) -> dict[str, Any]:
    """The item snapshot as JSON values (times as ISO 8601)."""
    values = asdict(item)
    return {**values, **{k: values[k].isoformat() if values[k] else None for k in _ITEM_TIMES}}


def _saga_of(row: Any) -> Saga:
    item = None
    if row.item:
        data = dict(row.item)
        # A time absent in sagas stored before it existed reads as None.
        times = {k: datetime.fromisoformat(data[k]) if data.get(k) else None for k in _ITEM_TIMES}
        item = ItemSnapshot(**{**data, "kind": ItemKind(data["kind"]), **times})
    return Saga(
        redemption_id=row.redemption_id,
        user_id=row.user_id,
        item_id=row.item_id,
        quantity=row.quantity,
        region=row.region,
        recipient_id=row.recipient_id,
        state=State(row.state),
        mode=Mode(row.mode),
        step=Step(row.step) if row.step else None,
        cancel_reason=row.cancel_reason,
        item=item,
        currency=row.currency,
        amount=row.amount,
        reservation_id=row.reservation_id,
        reserved_at=row.reserved_at,
        hold_id=row.hold_id,
        entitlements_granted=row.entitlements_granted,
        funds_committed=row.funds_committed,
        stock_attempt=row.stock_attempt,
        notes=tuple(row.notes or ()),
    )


def _record_of(row: Any, steps: Sequence[StepRecord] = (), entitlement_ids: Sequence[str] = ()) -> SagaRecord:
    return SagaRecord(
        saga=_saga_of(row),
        request_id=row.request_id,
        fingerprint=row.fingerprint,
        create_time=row.create_time,
        update_time=row.update_time,
        completed_at=row.completed_at,
        refund_request_id=row.refund_request_id or "",
        refund_fingerprint=row.refund_fingerprint or "",
        refund_reason=row.refund_reason,
        attempts=row.attempts,
        steps=tuple(steps),
        entitlement_ids=tuple(entitlement_ids),
    )


def _log_values(logs: Sequence[Log]) -> list[tuple[str, str, str]]:
    return [(s.value, o.value, d) for s, o, d in logs]


def _log_rows(redemption_id: str, logs: Sequence[Log], now: datetime) -> list[dict[str, Any]]:
    return [
        {"redemption_id": redemption_id, "name": s.value, "outcome": o.value, "detail": d[:DETAIL_LENGTH], "time": now}
        for s, o, d in logs
    ]


class SagaStore:
    def __init__(self, transactions: Transactions, events: RedemptionEvents) -> None:
        self._transactions = transactions
        self._events = events
        engine = self._engine = transactions.engine
        # The hot-path writes of concurrent sagas share statements (see saga_batches); `batches` is observable.
        # One statement in flight per kind: the writes that arrive meanwhile make the next batch larger,
        # so fewer commits and less CPU per saga (docs/redemption.md, The saga).
        writer = saga_batches.SagaWriter(engine)
        self.moves: GroupCommitter[saga_batches.Move, bool] = GroupCommitter(writer.move, concurrency=1)
        self.creations: GroupCommitter[saga_batches.Creation, bool] = GroupCommitter(writer.create, concurrency=1)

    async def drain(self) -> None:
        """Wait for the writes already submitted (shutdown)."""
        await self.moves.drain()
        await self.creations.drain()

    async def create(
        self, saga: Saga, request_id: str, fingerprint: str, now: datetime, owner: str, lease_until: datetime,
        logs: Sequence[Log] = (),
    ) -> tuple[SagaRecord, bool]:
        """Insert a new saga (leased to `owner`) or return the one already stored under request_id.

        `logs` are step-log rows written with it (default: the first step STARTED)."""
        if not logs and saga.step is not None:
            logs = [(saga.step, Outcome.STARTED, "")]
        created = await self.creations.submit(saga_batches.Creation(
            saga, request_id, fingerprint, _saga_values(saga), now, owner, lease_until, _log_values(logs)))
        if created:
            steps = tuple(StepRecord(step, outcome, detail[:DETAIL_LENGTH], now) for step, outcome, detail in logs)
            return SagaRecord(saga, request_id, fingerprint, now, now, None, "", "", "", 0, steps), True
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(sagas).where(sagas.c.request_id == request_id))).one()
        return _record_of(row), False

    async def get(self, redemption_id: str, *, with_steps: bool = False) -> SagaRecord | None:
        """The saga; `with_steps` adds its step log and entitlement ids (one round trip either way)."""
        async with self._engine.connect() as conn:
            raw = cast("asyncpg.Connection[Any]", (await conn.get_raw_connection()).driver_connection)
            found = await raw.fetchrow(saga_sql.VIEW, redemption_id)
        if found is None:
            return None
        row = saga_sql.row_namespace(found)
        if not with_steps:
            return _record_of(row)
        steps = [StepRecord(Step(n), Outcome(o), d, saga_sql.parse_time(t))
                 for n, o, d, t in saga_sql.decoded(row.step_log)]
        return _record_of(row, steps, row.entitlement_ids)

    async def transition(self, move: Transition, *, owner: str, lease_seconds: float,
                         tx: Transaction | None = None) -> bool:
        """Write `move` (the saga row, its step log, the entitlements it grants) if this owner still holds the
        lease and the saga is still at the mode and step `move` starts from; False means someone else moved it
        and the caller must stop. One batched statement, or, given the caller's transaction `tx` (other
        writes must share it), statements in that transaction."""
        before, now = move.before, move.time
        values = _saga_values(move.after)
        values |= {"update_time": now, "lease_until": now + timedelta(seconds=lease_seconds), "attempts": 0}
        if move.completes:
            values["completed_at"] = now
        events = self._events.of_transition(move)
        if tx is None:
            moved = await self.moves.submit(saga_batches.Move(
                before.redemption_id, owner, before.mode.value, before.step.value if before.step else None, values,
                _log_values(move.logs), move.grant, events))
            if moved and events:
                self._events.wake()
            return moved
        assert not move.grant, "grant rides the single-statement path"
        result = await tx.connection.execute(
            update(sagas)
            .where(
                sagas.c.redemption_id == before.redemption_id,
                sagas.c.lease_owner == owner,
                sagas.c.mode == before.mode.value,
                (sagas.c.step == before.step.value) if before.step else sagas.c.step.is_(None),
            )
            .values(**values)
        )
        if result.rowcount != 1:
            return False
        if move.logs:
            await tx.connection.execute(insert(saga_steps), _log_rows(before.redemption_id, move.logs, now))
        # The relay finds these within its idle pause: a wake now would come before the caller's commit.
        await insert_rows(tx.connection, self._events.outbox, events, now)
        return True

    async def note_retry(self, saga: Saga, step: Step, detail: str, *, owner: str, now: datetime,
                         retry_at: datetime, release: bool) -> None:
        """Log a transient failure; when `release`, hand the saga to the recovery loop at retry_at."""
        values: dict[str, Any] = {"attempts": sagas.c.attempts + 1, "next_attempt_at": retry_at, "update_time": now}
        if release:
            values["lease_until"] = now
        async with self._transactions.begin() as tx:
            conn = tx.connection
            result = await conn.execute(
                update(sagas)
                .where(sagas.c.redemption_id == saga.redemption_id, sagas.c.lease_owner == owner)
                .values(**values)
            )
            if result.rowcount == 1:
                await conn.execute(insert(saga_steps),
                                   _log_rows(saga.redemption_id, [(step, Outcome.FAILED, detail)], now))

    async def acquire(self, redemption_id: str, owner: str, now: datetime, lease_seconds: float) -> bool:
        """Take the lease of a pending saga whose lease has lapsed (or is already ours)."""
        async with self._transactions.begin() as tx:
            conn = tx.connection
            result = await conn.execute(
                update(sagas)
                .where(
                    sagas.c.redemption_id == redemption_id,
                    sagas.c.state == State.PENDING.value,
                    or_(sagas.c.lease_until <= now, sagas.c.lease_owner == owner),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
            )
            return result.rowcount == 1

    async def claim_due(self, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[str]:
        """Lease up to `limit` pending sagas nobody drives; SKIP LOCKED lets replicas share the work."""
        async with self._transactions.begin() as tx:
            conn = tx.connection
            due = (
                select(sagas.c.redemption_id)
                .where(and_(sagas.c.state == State.PENDING.value, sagas.c.lease_until <= now,
                            sagas.c.next_attempt_at <= now))
                .order_by(sagas.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = list((await conn.execute(due)).scalars())
            if ids:
                await conn.execute(
                    update(sagas)
                    .where(sagas.c.redemption_id.in_(ids))
                    .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
                )
            return ids

    async def by_request_id(self, request_id: str) -> SagaRecord | None:
        """The saga a Redeem with this request_id created, if any (a replay of it)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(sagas).where(sagas.c.request_id == request_id))).one_or_none()
        return _record_of(row) if row is not None else None

    async def count_pending(self) -> dict[str, int]:
        """Pending sagas per mode (FORWARD / COMPENSATING / REFUNDING), from the partial index on PENDING."""
        query = select(sagas.c.mode, func.count()).where(sagas.c.state == State.PENDING.value).group_by(sagas.c.mode)
        async with self._engine.connect() as conn:
            return {mode: int(n) for mode, n in await conn.execute(query)}

    async def list_for_user(self, user_id: str, limit: int, after: tuple[datetime, str] | None) -> list[SagaRecord]:
        query = select(sagas).where(sagas.c.user_id == user_id)
        if after is not None:
            query = query.where(func.row(sagas.c.create_time, sagas.c.redemption_id) < func.row(*after))
        query = query.order_by(sagas.c.create_time.desc(), sagas.c.redemption_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_record_of(row) for row in await conn.execute(query)]

    async def list_across_users(
        self, states: Sequence[State], created_after: datetime | None, limit: int, after: tuple[datetime, str] | None
    ) -> list[SagaRecord]:
        """Sagas of every user, newest first, each with its step log (two queries, one connection)."""
        query = select(sagas)
        if states:
            query = query.where(sagas.c.state.in_([s.value for s in states]))
        if created_after is not None:
            query = query.where(sagas.c.create_time >= created_after)
        if after is not None:
            query = query.where(func.row(sagas.c.create_time, sagas.c.redemption_id) < func.row(*after))
        query = query.order_by(sagas.c.create_time.desc(), sagas.c.redemption_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = list(await conn.execute(query))
            ids = [row.redemption_id for row in rows]
            query_steps = select(saga_steps).where(saga_steps.c.redemption_id.in_(ids)).order_by(saga_steps.c.id)
            logs = list(await conn.execute(query_steps)) if ids else []
        steps: dict[str, list[StepRecord]] = {}
        for log_row in logs:
            steps.setdefault(log_row.redemption_id, []).append(
                StepRecord(Step(log_row.name), Outcome(log_row.outcome), log_row.detail, log_row.time))
        return [_record_of(row, steps.get(row.redemption_id, ())) for row in rows]

    async def start_refund(
        self, tx: Transaction, before: Saga, after: Saga, *, request_id: str, fingerprint: str, reason: str,
        owner: str, now: datetime, lease_seconds: float,
    ) -> bool:
        """Move a COMPLETED saga into REFUNDING, in the caller's transaction (the revocation shares it)."""
        values = _saga_values(after) | {
            "refund_request_id": request_id,
            "refund_fingerprint": fingerprint,
            "refund_reason": reason,
            "lease_owner": owner,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "next_attempt_at": now,
            "update_time": now,
        }
        logs = [(Step.REVOKE_ENTITLEMENT, Outcome.STARTED, "refund")]
        result = await tx.connection.execute(
            update(sagas)
            .where(sagas.c.redemption_id == before.redemption_id, sagas.c.state == State.COMPLETED.value,
                   sagas.c.refund_request_id.is_(None))
            .values(**values)
        )
        if result.rowcount != 1:
            return False
        await tx.connection.execute(insert(saga_steps), _log_rows(before.redemption_id, logs, now))
        return True
