"""Group commit of saga writes: the creations and transitions of concurrent sagas in one statement each.

Every saga still writes its row before its next step's effect: its driver awaits its own write, and
a batch is one autocommit statement (one transaction, one WAL flush), so the write is durable when
the driver resumes. Under load (64 sagas in flight) a batch carries many sagas' writes, so the
per-statement costs (a pooled connection, a round trip, a commit, PostgreSQL's parse/plan/commit)
are paid once per batch instead of once per saga step. Per saga the rows are exactly those of a
single write: the saga row moves only if its driver still holds the lease and the saga is still at
the expected mode/step, and its step-log (and granted entitlement, and domain event) rows are written
iff it moved.

A batch never names one saga (or one request id) twice, so every row's outcome is its own. A batch
that fails as a whole (a deadlock with another replica, a discount-code collision) is re-applied
one write per statement by the `GroupCommitter`, so one bad write never fails its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from redemption.domain.saga import Saga
from redemption.store import saga_sql
from redemption.store.events import EventRow, event_args
from redemption.use_cases.records import DETAIL_LENGTH, EntitlementRow

if TYPE_CHECKING:
    import asyncpg

LogRow = tuple[str, str, str]  # step name, outcome, detail


@dataclass(frozen=True)
class Move:
    """One saga's transition: `values` (its new columns) if it is still `owner`'s at was_mode/was_step."""

    redemption_id: str
    owner: str
    was_mode: str
    was_step: str | None
    values: dict[str, Any]
    logs: Sequence[LogRow]
    grant: Sequence[EntitlementRow] = ()
    events: Sequence[EventRow] = ()


@dataclass(frozen=True)
class Creation:
    """A new saga row (leased to its creator) with its first step-log rows; skipped if request_id exists."""

    saga: Saga
    request_id: str
    fingerprint: str
    values: dict[str, Any]
    now: datetime
    owner: str
    lease_until: datetime
    logs: Sequence[LogRow]


def distinct_runs(ops: Sequence[Any], key: str) -> list[list[int]]:
    """Indexes of `ops` split into consecutive runs in which no `key` value repeats (order kept)."""
    runs: list[list[int]] = [[]]
    seen: set[Any] = set()
    for index, op in enumerate(ops):
        value = getattr(op, key)
        if value in seen:
            runs.append([])
            seen = set()
        seen.add(value)
        runs[-1].append(index)
    return runs


def _log_args(keys: Sequence[str], logs: Sequence[Sequence[LogRow]]) -> list[list[str]]:
    rids, names, outcomes, details = [], [], [], []
    for rid, rows in zip(keys, logs, strict=True):
        for name, outcome, detail in rows:
            rids.append(rid)
            names.append(name)
            outcomes.append(outcome)
            details.append(detail[:DETAIL_LENGTH])
    return [rids, names, outcomes, details]


def _column(ops: Sequence[Move | Creation], name: str) -> list[Any]:
    return [op.values[name] for op in ops]


def _json_column(ops: Sequence[Move | Creation], name: str) -> list[str]:
    return [saga_sql.jsonb(op.values[name]) for op in ops]


def move_args(moves: Sequence[Move]) -> list[Any]:
    """The parameters of saga_sql.MOVE for these transitions (distinct redemption ids)."""
    grants = [(m.redemption_id, g) for m in moves for g in m.grant]
    return [
        [m.redemption_id for m in moves], [m.owner for m in moves], [m.was_mode for m in moves],
        [m.was_step for m in moves], _column(moves, "state"), _column(moves, "mode"), _column(moves, "step"),
        _column(moves, "cancel_reason"), _json_column(moves, "item"), _column(moves, "currency"),
        _column(moves, "amount"), _column(moves, "reservation_id"), _column(moves, "reserved_at"),
        _column(moves, "hold_id"), _column(moves, "entitlements_granted"), _column(moves, "funds_committed"),
        _column(moves, "stock_attempt"), _json_column(moves, "notes"), _column(moves, "update_time"),
        _column(moves, "lease_until"), [m.values.get("completed_at") for m in moves],
        *_log_args([m.redemption_id for m in moves], [m.logs for m in moves]),
        [rid for rid, _ in grants], [g.entitlement_id for _, g in grants], [g.unit for _, g in grants],
        [g.discount_code for _, g in grants], [g.kind.value for _, g in grants], [g.state.value for _, g in grants],
        [g.raffle_id for _, g in grants], [g.event_id for _, g in grants], [g.cosmetic_id for _, g in grants],
        [g.gift_id for _, g in grants], [g.max_uses for _, g in grants], [g.unlimited_uses for _, g in grants],
        [g.expire_time for _, g in grants],
        *event_args([e for m in moves for e in m.events]),
    ]


def creation_args(creations: Sequence[Creation]) -> list[Any]:
    """The parameters of saga_sql.CREATE for these sagas (distinct request ids)."""
    c = creations
    sagas = [x.saga for x in c]
    return [
        [x.redemption_id for x in sagas], [x.request_id for x in c], [x.fingerprint for x in c],
        [x.user_id for x in sagas], [x.item_id for x in sagas], [x.quantity for x in sagas],
        [x.region for x in sagas], [x.recipient_id for x in sagas], _column(c, "state"), _column(c, "mode"),
        _column(c, "step"), _column(c, "cancel_reason"), _json_column(c, "item"), _column(c, "currency"),
        _column(c, "amount"), _column(c, "reservation_id"), _column(c, "reserved_at"), _column(c, "hold_id"),
        _column(c, "entitlements_granted"), _column(c, "funds_committed"), _column(c, "stock_attempt"),
        _json_column(c, "notes"), [x.now for x in c], [x.owner for x in c], [x.lease_until for x in c],
        *_log_args([x.redemption_id for x in sagas], [x.logs for x in c]),
    ]


class SagaWriter:
    """Runs batches of saga writes, one statement per run of distinct sagas, on the raw asyncpg connection
    (each statement prepared once per connection)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _apply(self, ops: Sequence[Any], key: str, sql: str,
                     args_of: Callable[[list[Any]], list[Any]]) -> list[bool]:
        done: list[bool] = [False] * len(ops)
        async with self._engine.connect() as conn:
            raw = cast("asyncpg.Connection[Any]", (await conn.get_raw_connection()).driver_connection)
            runs = distinct_runs(ops, key)
            if len(runs) == 1:
                written = {r[0] for r in await raw.fetch(sql, *args_of(list(ops)))}
                return [getattr(op, key) in written for op in ops]
            # All or nothing: a batch re-applied after a failure must not find half of it already moved.
            async with raw.transaction():
                for run in runs:
                    written = {r[0] for r in await raw.fetch(sql, *args_of([ops[i] for i in run]))}
                    for i in run:
                        done[i] = getattr(ops[i], key) in written
        return done

    async def move(self, moves: Sequence[Move]) -> Sequence[bool]:
        """Per transition: whether the saga moved (False: another driver or step owns it now)."""
        return await self._apply(moves, "redemption_id", saga_sql.MOVE, move_args)

    async def create(self, creations: Sequence[Creation]) -> Sequence[bool]:
        """Per creation: whether the row was inserted (False: its request_id already exists)."""
        return await self._apply(creations, "request_id", saga_sql.CREATE, creation_args)
