"""Wallet credits earning owes: the outbox entry, its dead letter and a requeue's outcome."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class PendingCredit:
    request_id: str  # wallet idempotency key, derived from the event id(s) (or join id)
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


# The reason of a credit that pays events of several activity types.
MIXED_REASON = "earning"


def one_credit_per_user_day(credits: Sequence[tuple[PendingCredit, date]]) -> dict[str, PendingCredit]:
    """For each event's credit (with the event's local day), the credit that pays it: one per user and
    day of the batch. The wallet writes a transaction, two postings and an idempotency record per
    credit, so a user's events of a batch are paid by one credit of their sum (each event keeps its
    own breakdown and names that credit). Per day, not per batch, so a day's summary counts a credit
    in one day only. A lone event keeps its own credit (request id and reference from its event id);
    a group's request id is derived from its members' (in batch order), so the same group always
    gets the same id, and its reference is its first event's id."""
    groups: dict[tuple[str, date], list[PendingCredit]] = {}
    for credit, day in credits:
        groups.setdefault((credit.user_id, day), []).append(credit)
    paid_by: dict[str, PendingCredit] = {}
    for members in groups.values():
        payer = members[0]
        if len(members) > 1:
            digest = hashlib.sha256("\n".join(c.request_id for c in members).encode()).hexdigest()[:40]
            reasons = {c.reason for c in members}
            payer = PendingCredit(
                "earning-evs-" + digest, payer.user_id, sum(c.amount for c in members),
                payer.reason if len(reasons) == 1 else MIXED_REASON, payer.reference,
            )
        for c in members:
            paid_by[c.request_id] = payer
    return paid_by
