"""Wallet credits earning owes: the outbox entry, its dead letter and a requeue's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PendingCredit:
    request_id: str  # wallet idempotency key, derived from the event (or join) id
    user_id: str
    amount: int
    reason: str
    reference: str


@dataclass(frozen=True)
class DeadLetter:
    credit: PendingCredit
    reason: str
    attempts: int


@dataclass(frozen=True)
class FailedCredit:
    """A dead-lettered credit, as an operator sees it."""

    credit: PendingCredit
    failure: str
    attempts: int
    failed_time: datetime


@dataclass(frozen=True)
class Requeue:
    requeued: list[PendingCredit]
    unchanged: list[str]  # pending or credited: not in the dead letter
    unknown: list[str]
