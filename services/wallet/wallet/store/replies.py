"""The JSON form of a use case's answer, stored with its request id for idempotent replay.

A stored answer is decoded back into the very result the first call returned.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from datetime import datetime
from enum import IntEnum
from typing import Any, TypeVar

from wallet.domain import Currency
from wallet.use_cases.results import HoldView, LedgerResult, TransactionView

T = TypeVar("T")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def encode(result: object) -> str:
    return json.dumps(_plain(result), separators=(",", ":"))


def encode_ledger(result: LedgerResult, create_time: str | None = None) -> str:
    """`encode` of a LedgerResult, written out (the ledger hot path stores one per operation);
    `create_time` is the transaction time's isoformat, computed once per batch."""
    t = result.transaction
    return json.dumps(
        {
            "transaction": {
                "transaction_id": t.transaction_id,
                "request_id": t.request_id,
                "kind": int(t.kind),
                "postings": [
                    {"account": p.account, "user_id": p.user_id, "currency": int(p.currency), "amount": p.amount}
                    for p in t.postings
                ],
                "create_time": create_time if create_time is not None else t.create_time.isoformat(),
                "reason": t.reason,
                "reference": t.reference,
            },
            "balances": [
                {"user_id": b.user_id, "currency": int(b.currency), "available": b.available, "held": b.held}
                for b in result.balances
            ],
            "gift_rate_bps": result.gift_rate_bps,
        },
        separators=(",", ":"),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def encode_hold_template(
    hold: HoldView, user_id: str, currency: Currency, transaction: TransactionView | None
) -> tuple[str, str, str]:
    """`encode(HoldResult(hold, BalanceView(user_id, currency, available, held), transaction))`,
    written out (the hold hot path stores one per call) and split around the balance's two
    numbers: `head + str(available) + mid + str(held) + tail`. The hold statements fill in the
    balance the database computes, so the answer is stored in the same round trip."""
    h = hold
    head = json.dumps(
        {
            "hold": {
                "hold_id": h.hold_id,
                "user_id": h.user_id,
                "currency": int(h.currency),
                "amount": h.amount,
                "committed_amount": h.committed_amount,
                "state": int(h.state),
                "reference": h.reference,
                "expire_time": _iso(h.expire_time),
                "create_time": h.create_time.isoformat(),
                "resolve_time": _iso(h.resolve_time),
                "refunded_amount": h.refunded_amount,
            },
            "balance": {"user_id": user_id, "currency": int(currency)},
        },
        separators=(",", ":"),
    )[:-2]  # open: the balance's numbers follow
    t = transaction
    tail = "null" if t is None else json.dumps(
        {
            "transaction_id": t.transaction_id,
            "request_id": t.request_id,
            "kind": int(t.kind),
            "postings": [
                {"account": p.account, "user_id": p.user_id, "currency": int(p.currency), "amount": p.amount}
                for p in t.postings
            ],
            "create_time": t.create_time.isoformat(),
            "reason": t.reason,
            "reference": t.reference,
        },
        separators=(",", ":"),
    )
    return head + ',"available":', ',"held":', '},"transaction":' + tail + "}"


@functools.cache
def _fields(tp: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's (field name, resolved type) pairs, resolved once: resolving the annotations is
    the slow part of decoding, and replaying a batch decodes every stored answer in it."""
    hints = typing.get_type_hints(tp)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(tp))


def _build(tp: Any, data: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner, data)
    if origin is tuple:
        return tuple(_build(typing.get_args(tp)[0], v) for v in data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        # a field added later is absent from older stored answers: its default applies
        return tp(**{name: _build(hint, data[name]) for name, hint in _fields(tp) if name in data})
    if tp is datetime:
        return datetime.fromisoformat(data)
    if isinstance(tp, type) and issubclass(tp, IntEnum):
        return tp(data)
    return data


def decode(cls: type[T], raw: str) -> T:
    result: T = _build(cls, json.loads(raw))
    return result
