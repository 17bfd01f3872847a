"""Entitlements (granted and revoked inside saga transitions, used by ConsumeEntitlement) and raffle draws."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.unit_of_work import RaceLost, Transaction
from redemption.domain.entitlements import EntitlementKind, EntitlementState, Usage
from redemption.domain.saga import State
from redemption.store.events import RedemptionEvents, consumed
from redemption.store.tables import entitlement_uses, entitlements, raffle_draws, sagas
from redemption.use_cases.commands import ConsumeCommand
from redemption.use_cases.records import (
    Consumption,
    EntitlementRow,
    EntriesPendingError,
    RaffleDrawRow,
    UseRow,
    UseRule,
    WinnerPick,
)

_SNAPSHOT: TypeAdapter[EntitlementRow] = TypeAdapter(EntitlementRow)


def _entitlement(row: Any) -> EntitlementRow:
    return EntitlementRow(
        row.entitlement_id, row.user_id, row.redemption_id, row.unit, EntitlementKind(row.kind), row.item_id,
        EntitlementState(row.state), row.discount_code, row.raffle_id, row.event_id, row.recipient_id,
        row.cosmetic_id, row.gift_id, row.create_time, row.max_uses, row.unlimited_uses, row.use_count,
        row.expire_time,
    )


def _use(row: Any) -> UseRow:
    return UseRow(row.request_id, row.entitlement_id, row.use_number, row.caller, row.reference, row.use_time)


def _target(entitlement_id: str, discount_code: str) -> Any:
    return entitlements.c.entitlement_id == entitlement_id if entitlement_id else \
        entitlements.c.discount_code == discount_code


def _draw(row: Any) -> RaffleDrawRow:
    return RaffleDrawRow(
        row.raffle_id, bytes(row.seed), row.seed_hash, row.state, row.draw_after, row.winners_wanted,
        list(row.winner_entitlement_ids), list(row.winner_user_ids), row.ticket_count, row.prepare_time,
        row.draw_time,
    )


class EntitlementStore:
    def __init__(self, engine: AsyncEngine, events: RedemptionEvents) -> None:
        self._engine = engine
        self._events = events

    async def get(self, entitlement_id: str, discount_code: str) -> EntitlementRow | None:
        """By id or, when `entitlement_id` is empty, by discount code."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(entitlements).where(_target(entitlement_id, discount_code)))
                   ).one_or_none()
            return _entitlement(row) if row else None

    async def uses(self, entitlement_id: str, limit: int) -> list[UseRow]:
        """The latest uses, newest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(entitlement_uses).where(entitlement_uses.c.entitlement_id == entitlement_id)
                .order_by(entitlement_uses.c.use_number.desc()).limit(limit))
            return [_use(r) for r in rows]

    async def revoke(self, tx: Transaction, redemption_id: str) -> None:
        await tx.connection.execute(
            update(entitlements)
            .where(entitlements.c.redemption_id == redemption_id, entitlements.c.state == EntitlementState.ACTIVE.value)
            .values(state=EntitlementState.REVOKED.value)
        )

    async def lock_usages(self, tx: Transaction, redemption_id: str) -> list[Usage]:
        """The redemption's entitlements, locked against a concurrent use until the transaction ends."""
        rows = await tx.connection.execute(
            select(entitlements).where(entitlements.c.redemption_id == redemption_id).with_for_update())
        return [_entitlement(r).usage for r in rows]

    async def stored_use(self, tx: Transaction, request_id: str) -> Consumption | None:
        """The use recorded under `request_id` (what a retry of its ConsumeEntitlement answers), if any."""
        row = (await tx.connection.execute(
            select(entitlement_uses).where(entitlement_uses.c.request_id == request_id))).one_or_none()
        if row is None:
            return None
        return Consumption(_SNAPSHOT.validate_python(row.entitlement), _use(row), row.fingerprint)

    async def record_use(self, tx: Transaction, request: ConsumeCommand, now: datetime,
                         rule: UseRule) -> Consumption | None:
        """Record one use under `request.request_id` in `tx` (None: no such entitlement). The entitlement row
        is locked FOR UPDATE while `rule` decides, so concurrent uses of one entitlement queue there and each
        sees the count the previous one left. The use row carries the idempotency key (folded storage,
        `points_platform.idempotency`): its primary key refuses a second use under one request id."""
        conn = tx.connection
        row = (await conn.execute(
            select(entitlements, sagas.c.state.label("saga_state"))
            .join(sagas, sagas.c.redemption_id == entitlements.c.redemption_id)
            .where(_target(request.entitlement_id, request.discount_code))
            .with_for_update(of=entitlements))).one_or_none()
        if row is None:
            return None
        if await self.stored_use(tx, request.request_id) is not None:
            # A call with the same key held the lock first: its answer, not this rule's verdict on the
            # count it left, is what this call gets.
            raise RaceLost(request.request_id)
        after = rule(_entitlement(row), row.saga_state == State.COMPLETED.value)
        await conn.execute(update(entitlements).where(entitlements.c.entitlement_id == after.entitlement_id)
                           .values(use_count=after.use_count, state=after.state.value))
        use = UseRow(request.request_id, after.entitlement_id, after.use_count, request.caller, request.reference, now)
        await conn.execute(insert(entitlement_uses).values(
            **use.__dict__, fingerprint=request.fingerprint, entitlement=_SNAPSHOT.dump_python(after, mode="json")))
        # After the entitlement's lock: the next use of it appends later, so its uses publish in order.
        await self._events.outbox.append(conn, [consumed(after, now)])
        return Consumption(after, use, request.fingerprint)

    async def list_for_user(self, user_id: str, limit: int, after: tuple[datetime, str] | None) -> list[EntitlementRow]:
        query = select(entitlements).where(entitlements.c.user_id == user_id)
        if after is not None:
            query = query.where(func.row(entitlements.c.create_time, entitlements.c.entitlement_id) < func.row(*after))
        query = query.order_by(entitlements.c.create_time.desc(), entitlements.c.entitlement_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_entitlement(r) for r in await conn.execute(query)]

    async def get_draw(self, raffle_id: str) -> RaffleDrawRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(raffle_draws).where(raffle_draws.c.raffle_id == raffle_id))).one_or_none()
            return _draw(row) if row else None

    async def drawn_tickets(self, raffle_id: str, limit: int,
                            after: tuple[datetime, str] | None) -> list[tuple[datetime, str]]:
        """(create time, id) of the tickets a drawn raffle drew from, oldest first: the draw consumed exactly
        those (nothing else consumes a raffle ticket, and none is refunded after the draw)."""
        query = select(entitlements.c.create_time, entitlements.c.entitlement_id).where(
            entitlements.c.raffle_id == raffle_id, entitlements.c.kind == EntitlementKind.RAFFLE_TICKET.value,
            entitlements.c.state == EntitlementState.CONSUMED.value)
        if after is not None:
            query = query.where(func.row(entitlements.c.create_time, entitlements.c.entitlement_id) > func.row(*after))
        query = query.order_by(entitlements.c.create_time, entitlements.c.entitlement_id).limit(limit)
        async with self._engine.connect() as conn:
            return [(row.create_time, row.entitlement_id) for row in await conn.execute(query)]

    async def is_drawn(self, raffle_id: str, *, wait_for_draw: bool = False) -> bool:
        """Whether the raffle was drawn. `wait_for_draw`: FOR SHARE, which waits for a draw in progress (it
        holds the record FOR UPDATE), so a saga about to commit a ticket's funds either sees the draw or
        was seen by it (its active ticket of a pending saga makes the draw refuse, EntriesPending)."""
        query = select(raffle_draws.c.state).where(raffle_draws.c.raffle_id == raffle_id)
        async with self._engine.connect() as conn:
            state = (await conn.execute(query.with_for_update(read=True) if wait_for_draw else query)
                     ).scalar_one_or_none()
            await conn.commit()
        return state == "DRAWN"

    async def prepare_draw(self, tx: Transaction, draw: RaffleDrawRow) -> RaffleDrawRow:
        """Store a new draw record; a raffle already prepared keeps its first seed."""
        values = {k: v for k, v in draw.__dict__.items()}
        await tx.connection.execute(pg_insert(raffle_draws).values(**values).on_conflict_do_nothing(
            index_elements=["raffle_id"]))
        row = (await tx.connection.execute(select(raffle_draws).where(raffle_draws.c.raffle_id == draw.raffle_id))
               ).one()
        return _draw(row)

    async def draw(self, tx: Transaction, raffle_id: str, now: datetime, pick: WinnerPick) -> RaffleDrawRow | None:
        """Draw once: lock the record, take the active tickets of completed redemptions, store winners,
        consume every ticket. A second call returns the stored result unchanged. Raises EntriesPendingError
        while an active ticket belongs to a pending saga (it may still be paid for, or released): drawn
        without it, a ticket paid for afterwards could never win."""
        conn = tx.connection
        row = (await conn.execute(
            select(raffle_draws).where(raffle_draws.c.raffle_id == raffle_id).with_for_update())).one_or_none()
        if row is None:
            return None
        if row.state == "DRAWN":
            return _draw(row)
        pending = (await conn.execute(
            select(func.count())
            .select_from(entitlements.join(sagas, sagas.c.redemption_id == entitlements.c.redemption_id))
            .where(entitlements.c.raffle_id == raffle_id,
                   entitlements.c.kind == EntitlementKind.RAFFLE_TICKET.value,
                   entitlements.c.state == EntitlementState.ACTIVE.value,
                   sagas.c.state == State.PENDING.value)
        )).scalar_one()
        if pending:
            raise EntriesPendingError(pending)
        tickets = (await conn.execute(
            select(entitlements.c.entitlement_id, entitlements.c.user_id)
            .join(sagas, sagas.c.redemption_id == entitlements.c.redemption_id)
            .where(entitlements.c.raffle_id == raffle_id,
                   entitlements.c.kind == EntitlementKind.RAFFLE_TICKET.value,
                   entitlements.c.state == EntitlementState.ACTIVE.value,
                   sagas.c.state == State.COMPLETED.value)
            .with_for_update(of=entitlements)
        )).all()
        owners = {t.entitlement_id: t.user_id for t in tickets}
        winners: list[str] = pick(bytes(row.seed), list(owners), row.winners_wanted)
        await conn.execute(
            update(entitlements).where(entitlements.c.entitlement_id.in_(list(owners)))
            .values(state=EntitlementState.CONSUMED.value)
        )
        await conn.execute(
            update(raffle_draws).where(raffle_draws.c.raffle_id == raffle_id).values(
                state="DRAWN", winner_entitlement_ids=winners, winner_user_ids=[owners[w] for w in winners],
                ticket_count=len(owners), draw_time=now)
        )
        row = (await conn.execute(select(raffle_draws).where(raffle_draws.c.raffle_id == raffle_id))).one()
        return _draw(row)
