"""The wallet's domain events (points.events.v1 `transaction_posted`) as outbox rows, written by the
statements that post the ledger transactions (docs/events.md, "The wallet").

One event per user a transaction touches. Each row's payload is the event serialized here without
its last fields, which the statement appends with `wallet_event_tail` (migration 0009) after the
account row is locked: `aggregate_version` from the sequence `wallet_event_version`, and, where only
SQL knows it (a hold commit), `balance_after`. A version drawn under the account's lock is higher
than every version of that account committed before, so one balance's events carry strictly
increasing versions in the order they commit and publish.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from points.events.v1 import envelope_pb2
from points.events.v1 import wallet_pb2 as events_pb2
from points_platform.events import EVENT_TYPES, partition_of, subject_for
from wallet.domain import Currency, Kind, LedgerOp

SERVICE = "wallet"
EVENT_TYPE = "transaction_posted"
assert EVENT_TYPE in EVENT_TYPES
# Keep it: change it only with an empty backlog (a user's pending rows would sit in two partitions).
PARTITIONS = 16

# What finishes a payload in SQL: the next version, and `{balance}` (NULL: already in the payload).
TAIL = "wallet_event_tail(nextval('wallet_event_version'), {balance})"

_EFFECT_OF_KIND: dict[Kind, events_pb2.TransactionEffect.ValueType] = {
    Kind.CREDIT: events_pb2.TRANSACTION_EFFECT_CREDIT,
    Kind.DEBIT: events_pb2.TRANSACTION_EFFECT_DEBIT,
    Kind.HOLD_COMMIT: events_pb2.TRANSACTION_EFFECT_HOLD_COMMITTED,
    Kind.PAYOUT: events_pb2.TRANSACTION_EFFECT_PAYOUT_COMPLETED,
    Kind.EXPIRY: events_pb2.TRANSACTION_EFFECT_EXPIRED,
    Kind.REFUND: events_pb2.TRANSACTION_EFFECT_HOLD_REFUNDED,
    Kind.FORFEIT: events_pb2.TRANSACTION_EFFECT_EXPIRED,
}


@dataclass(frozen=True)
class EventRow:
    """One event as the outbox stores it, its payload still without the tail."""

    event_id: str
    subject: str
    partition: int
    payload: bytes


@dataclass(frozen=True)
class Posted:
    """What one user's event says (the envelope's user, aggregate and time come with it)."""

    user_id: str
    currency: Currency
    effect: events_pb2.TransactionEffect.ValueType
    amount: int
    transaction_id: str = ""
    reference: str = ""
    counterparty: str = ""
    hold_id: str = ""
    held_change: int = 0
    balance_after: int | None = None  # None: the statement appends it


def effect_of(kind: Kind) -> events_pb2.TransactionEffect.ValueType:
    return _EFFECT_OF_KIND[kind]


def aggregate_id(user_id: str, currency: Currency) -> str:
    """The aggregate an event versions: the user's balance in one currency."""
    return f"{user_id}/{currency.name}"


def row(p: Posted, now: datetime) -> EventRow:
    # Built directly rather than with `points_platform.events.new_event` (a third of its cost, and
    # a batch builds one per credit); one event type, whose oneof field is set by name.
    event = envelope_pb2.Event(
        event_id=str(uuid.uuid4()), event_type=EVENT_TYPE, user_id=p.user_id, occurred_time=_timestamp(now),
        aggregate_id=aggregate_id(p.user_id, p.currency), source_service=SERVICE,
        transaction_posted=events_pb2.TransactionPosted(
            transaction_id=p.transaction_id, effect=p.effect, currency=int(p.currency),  # type: ignore[arg-type]
            amount=p.amount, balance_after=p.balance_after or 0, reference=p.reference,
            counterparty_user_id=p.counterparty, hold_id=p.hold_id, held_change=p.held_change,
        ),
    )
    partition = partition_of(p.user_id, PARTITIONS)
    return EventRow(event.event_id, subject_for(SERVICE, EVENT_TYPE, partition), partition, event.SerializeToString())


@functools.lru_cache(maxsize=8)
def _timestamp(now: datetime) -> Timestamp:
    """A batch's events share their time: converted once."""
    ts = Timestamp()
    ts.FromDatetime(now)
    return ts


def of_ledger_op(
    op: LedgerOp, transaction_id: str, balances_after: Sequence[tuple[str, Currency, int, int]], now: datetime
) -> list[EventRow]:
    """One event per user leg of a ledger batch's op (`balances_after`: its user legs' balances, in
    leg order). A gift's sender gets GIFT_SENT and its creator GIFT_RECEIVED, each naming the other."""
    users = [leg for leg in op.legs if leg.is_user]
    rows = []
    for leg, (_, _, available, held) in zip(users, balances_after, strict=True):
        if op.kind is Kind.GIFT:
            sent = leg.amount < 0
            effect = events_pb2.TRANSACTION_EFFECT_GIFT_SENT if sent else events_pb2.TRANSACTION_EFFECT_GIFT_RECEIVED
            counterparty = next((o.user_id for o in users if (o.amount < 0) != sent), "")
        else:
            effect, counterparty = effect_of(op.kind), ""
        rows.append(row(Posted(leg.user_id, leg.currency, effect, leg.amount, transaction_id, op.reference,
                               counterparty, balance_after=available + held), now))
    return rows


def columns(rows: Iterable[EventRow]) -> list[list[Any]]:
    """The unnest arrays of `ARM` (event id, subject, partition, payload), in publish order."""
    rows = list(rows)
    return [[r.event_id for r in rows], [r.subject for r in rows], [r.partition for r in rows],
            [r.payload for r in rows]]


def arm(first: int, now: str) -> str:
    """The INSERT of a batch's events (their balances already in the payloads), for a CTE arm or a
    statement of its own: parameters ${first} .. ${first + 3} are `columns(...)`, `now` the time."""
    return f"""
        INSERT INTO outbox (event_id, subject, partition, payload, created_time)
        SELECT e.event_id, e.subject, e.partition, e.payload || {TAIL.format(balance="NULL")}, {now}
        FROM unnest(${first}::uuid[], ${first + 1}::text[], ${first + 2}::smallint[], ${first + 3}::bytea[])
             WITH ORDINALITY AS e(event_id, subject, partition, payload, n)
        ORDER BY e.n"""


_APPEND = arm(1, "$5::timestamptz")


async def append(conn: Any, rows: Sequence[EventRow], now: datetime) -> None:
    """Write `rows` on `conn` (a raw asyncpg connection, in the transaction of the change, after
    the account row is locked): one statement whatever their number."""
    if rows:
        await conn.execute(_APPEND, *columns(rows), now)
