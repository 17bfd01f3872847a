"""The records the use cases exchange with the store: sagas as stored (with their step log), one saga write,
entitlements and their uses, raffle draws."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from redemption.domain.entitlements import EntitlementKind, EntitlementState, Usage
from redemption.domain.saga import Outcome, Saga, State, Step

Log = tuple[Step, Outcome, str]  # a step-log row: step, outcome, detail
DETAIL_LENGTH = 500  # a step-log detail is stored cut to this length


@dataclass(frozen=True)
class StepRecord:
    name: Step
    outcome: Outcome
    detail: str
    time: datetime


@dataclass(frozen=True)
class EntitlementRow:
    entitlement_id: str
    user_id: str
    redemption_id: str
    unit: int
    kind: EntitlementKind
    item_id: str
    state: EntitlementState
    discount_code: str | None
    raffle_id: str
    event_id: str
    recipient_id: str
    cosmetic_id: str
    gift_id: str
    create_time: datetime
    max_uses: int
    unlimited_uses: bool
    use_count: int
    expire_time: datetime | None

    @property
    def usage(self) -> Usage:
        return Usage(self.kind, self.state, self.max_uses, self.unlimited_uses, self.use_count, self.expire_time)


@dataclass(frozen=True)
class Transition:
    """One saga write: `before` moves to `after` at `time`, with its step-log rows (the next step's STARTED row
    included) and the entitlements it grants. Written only if the saga is still at `before`'s mode and step."""

    before: Saga
    after: Saga
    logs: tuple[Log, ...]
    time: datetime
    grant: tuple[EntitlementRow, ...] = ()

    @classmethod
    def of(cls, before: Saga, after: Saga, logs: Sequence[Log], time: datetime,
           grant: Sequence[EntitlementRow] = ()) -> Transition:
        rows = tuple(logs)
        if after.step is not None and after.step is not before.step:
            rows = (*rows, (after.step, Outcome.STARTED, ""))
        return cls(before, after, rows, time, tuple(grant))

    @property
    def completes(self) -> bool:
        return self.after.state is State.COMPLETED and self.before.state is State.PENDING


@dataclass(frozen=True)
class SagaRecord:
    """A saga plus what only the store and the API care about."""

    saga: Saga
    request_id: str
    fingerprint: str
    create_time: datetime
    update_time: datetime
    completed_at: datetime | None
    refund_request_id: str
    refund_fingerprint: str
    refund_reason: str
    attempts: int
    steps: tuple[StepRecord, ...] = ()
    entitlement_ids: tuple[str, ...] = ()

    def followed_by(self, moves: Sequence[Transition]) -> SagaRecord:
        """The record as stored once `moves` (each one moved the saga, in order) committed after it: what a
        read would return, when nothing else wrote the saga meanwhile."""
        record = self
        for move in moves:
            record = replace(
                record, saga=move.after, update_time=move.time,
                completed_at=move.time if move.completes else record.completed_at,
                steps=record.steps + tuple(StepRecord(step, outcome, detail[:DETAIL_LENGTH], move.time)
                                           for step, outcome, detail in move.logs),
                entitlement_ids=record.entitlement_ids + tuple(
                    g.entitlement_id for g in sorted(move.grant, key=lambda g: g.unit)))
        return record


@dataclass(frozen=True)
class UseRow:
    """One recorded use of an entitlement."""

    request_id: str
    entitlement_id: str
    use_number: int
    caller: str
    reference: str
    use_time: datetime


@dataclass(frozen=True)
class Consumption:
    """A use and the entitlement right after it: the answer of ConsumeEntitlement, replayed as stored
    (`fingerprint`: the request digest the use row keeps)."""

    entitlement: EntitlementRow
    use: UseRow
    fingerprint: str


# Decides one more use of the locked entitlement (is its redemption completed?): the entitlement after the
# use, or raises the refusal.
UseRule = Callable[[EntitlementRow, bool], EntitlementRow]
# Picks the winning ticket ids from the seed, the ticket ids and the number of winners (domain.raffle.draw_winners).
WinnerPick = Callable[[bytes, list[str], int], list[str]]


@dataclass(frozen=True)
class RaffleDrawRow:
    raffle_id: str
    seed: bytes
    seed_hash: str
    state: str  # PREPARED | DRAWN
    draw_after: datetime
    winners_wanted: int
    winner_entitlement_ids: list[str]
    winner_user_ids: list[str]
    ticket_count: int
    prepare_time: datetime
    draw_time: datetime | None


class EntriesPendingError(Exception):
    """A raffle cannot be drawn yet: tickets of sagas still in flight could still become paid entries."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} tickets of pending redemptions")
        self.count = count
