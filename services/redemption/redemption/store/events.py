"""The redemption's domain events (points.events.v1) as outbox rows, written by the statements that make
the changes: a saga's terminal transition, a grant, a use (docs/events.md, "Redemption").

Versions (`aggregate_version`) count what a consumer can see of the aggregate: a redemption is at 1 once
it completed or was cancelled and at 2 once refunded; an entitlement is at 1 when granted and at n + 1
after its n-th use. Each aggregate's changes are serialized by its row (the saga's expected mode and step,
the entitlement's FOR UPDATE lock), so its versions are published in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from points.common.v1 import common_pb2
from points.events.v1 import envelope_pb2
from points.events.v1 import redemption_pb2 as events_pb2
from points_platform.events import new_event, partition_key, partition_of, subject_for
from points_platform.outbox import Outbox
from redemption.domain.saga import Saga, State
from redemption.use_cases.records import EntitlementRow, Transition

SERVICE = "redemption"
# Keep it: change it only with an empty backlog (a user's pending rows would sit in two partitions).
PARTITIONS = 16

_VERSION_OF_STATE = {State.COMPLETED: 1, State.CANCELLED: 1, State.REFUNDED: 2}


@dataclass(frozen=True)
class EventRow:
    """One event as the outbox stores it. `entitlement_id`: for a grant, the entitlement whose insertion the
    row follows (a grant that adds nothing writes no event); empty otherwise."""

    redemption_id: str
    entitlement_id: str
    event_id: str
    subject: str
    partition: int
    payload: bytes


class RedemptionEvents:
    """The service's outbox and how the stores tell the relay that events committed (`wake`, set once the
    relay runs)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.wake: Callable[[], None] = lambda: None

    def row(self, event: envelope_pb2.Event, redemption_id: str, entitlement_id: str = "") -> EventRow:
        partition = partition_of(partition_key(event), self.outbox.partitions)
        subject = subject_for(self.outbox.service, event.event_type, partition)
        return EventRow(redemption_id, entitlement_id, event.event_id, subject, partition, event.SerializeToString())

    def of_transition(self, move: Transition) -> list[EventRow]:
        """The grants' events, then the terminal state's event (the order they are published in)."""
        rid = move.after.redemption_id
        rows = [self.row(_granted(move.after, grant, move.time), rid, grant.entitlement_id)
                for grant in sorted(move.grant, key=lambda g: g.unit)]
        terminal = _terminal(move)
        if terminal is not None:
            rows.append(self.row(terminal, rid))
        return rows


def _price(saga: Saga) -> common_pb2.Price:
    currency = common_pb2.Currency.Value(f"CURRENCY_{saga.currency}") if saga.currency else \
        common_pb2.CURRENCY_UNSPECIFIED
    return common_pb2.Price(currency=currency, amount=saga.amount)


def _terminal(move: Transition) -> envelope_pb2.Event | None:
    after = move.after
    if after.state is move.before.state or after.state not in _VERSION_OF_STATE:
        return None
    payload: Any
    if after.state is State.COMPLETED:
        payload = events_pb2.RedemptionCompleted(redemption_id=after.redemption_id, item_id=after.item_id,
                                                 quantity=after.quantity, price=_price(after))
    elif after.state is State.CANCELLED:
        payload = events_pb2.RedemptionCancelled(redemption_id=after.redemption_id, item_id=after.item_id,
                                                 reason=after.cancel_reason)
    else:
        payload = events_pb2.RedemptionRefunded(redemption_id=after.redemption_id, item_id=after.item_id,
                                                refund=_price(after))
    return new_event(SERVICE, payload, user_id=after.user_id, aggregate_id=after.redemption_id,
                     aggregate_version=_VERSION_OF_STATE[after.state], occurred_time=move.time)


def _granted(saga: Saga, grant: EntitlementRow, now: datetime) -> envelope_pb2.Event:
    payload = events_pb2.EntitlementGranted(
        entitlement_id=grant.entitlement_id, redemption_id=saga.redemption_id, item_id=grant.item_id,
        max_uses=0 if grant.unlimited_uses else grant.max_uses)
    if grant.expire_time is not None:
        payload.expire_time.FromDatetime(grant.expire_time)
    return new_event(SERVICE, payload, user_id=grant.user_id, aggregate_id=grant.entitlement_id,
                     aggregate_version=1, occurred_time=now)


def consumed(after: EntitlementRow, now: datetime) -> envelope_pb2.Event:
    """The n-th use of an entitlement (`after`: the entitlement with that use counted)."""
    remaining = 0 if after.unlimited_uses else max(after.max_uses - after.use_count, 0)
    payload = events_pb2.EntitlementConsumed(entitlement_id=after.entitlement_id, use_count=after.use_count,
                                             remaining_uses=remaining)
    return new_event(SERVICE, payload, user_id=after.user_id, aggregate_id=after.entitlement_id,
                     aggregate_version=after.use_count + 1, occurred_time=now)


def event_args(rows: Sequence[EventRow]) -> list[list[Any]]:
    """The outbox columns of saga_sql.MOVE (redemption id, entitlement id, event id, subject, partition,
    payload), one array element per event in publish order."""
    return [[r.redemption_id for r in rows], [r.entitlement_id for r in rows], [r.event_id for r in rows],
            [r.subject for r in rows], [r.partition for r in rows], [r.payload for r in rows]]


async def insert_rows(conn: AsyncConnection, outbox: Outbox, rows: Sequence[EventRow], now: datetime) -> None:
    """Write `rows` in the caller's transaction (the statement path outside saga_sql.MOVE)."""
    if rows:
        await conn.execute(sa.insert(outbox.table), [
            {"event_id": r.event_id, "subject": r.subject, "partition": r.partition, "payload": r.payload,
             "created_time": now} for r in rows])
