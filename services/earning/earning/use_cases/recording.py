"""RecordActivity / RecordActivities / StreamActivities: decide and persist first, then credit.

A batch is processed set-based, in one transaction: lock the batch's users (sorted), look all
event ids up (a replay returns the stored result), load every fact the batch needs in a few
queries, evaluate the events in order with the pure rules (each decision updates the in-memory
facts, so a user's second event sees the first), then write events, counters, paid targets,
budgets, held earnings and the wallet credits (outbox) with one array statement per table.
After the commit the batch's credits go to the wallet in one call; if the wallet is down they
stay pending and the reconciliation loop sends them later (the wallet request id is derived
from the event id, so resending is safe). The response says AWARDED as soon as the points are
decided. Concurrent single events are coalesced into such batches (`GroupCommitter`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import structlog

from earning import metrics
from earning.domain.batch import BatchFacts, lookback
from earning.domain.credit import PendingCredit, one_credit_per_user_day
from earning.domain.evaluation import timing_problem
from earning.domain.model import EventStatus, RuleApplication, Rules
from earning.use_cases.commands import IncomingEvent
from earning.use_cases.crediting import Crediting
from earning.use_cases.ports import Database, LockedUsers, NewEvent, NewHeld, Replay, Session, StoredEvent
from earning.use_cases.rulebook import RuleBook, applicable
from points_platform.clock import Clock
from points_platform.errors import InvalidArgument, idempotency_key_reused
from points_platform.group_commit import GroupCommitter

log = structlog.get_logger("earning.recording")


def event_credit_id(event_id: str) -> str:
    """Wallet request id of an event's credit: stable, within the wallet's 128-char limit."""
    return "earning-ev-" + hashlib.sha256(event_id.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class EventOutcome:
    event_id: str
    status: EventStatus
    points_awarded: int
    breakdown: tuple[RuleApplication, ...] = ()
    rejection_reason: str = ""
    wallet_transaction_id: str = ""
    held_earning_id: str = ""


class Recorder:
    def __init__(
        self, database: Database, clock: Clock, rules: RuleBook, crediting: Crediting,
        *, coalesce_max_batch: int = 500, coalesce_concurrency: int = 1,
    ) -> None:
        self._db = database
        self._clock = clock
        self._rules = rules
        self._crediting = crediting
        # Concurrent single events share batches: decide transaction + one wallet call per batch.
        # One batch in flight: events queue while it runs, so the next batch is larger and each
        # event costs less (docs/earning.md, Performance).
        self.coalescer: GroupCommitter[IncomingEvent, EventOutcome] = GroupCommitter(
            self.record, max_batch=coalesce_max_batch, concurrency=coalesce_concurrency
        )

    async def record_one(self, incoming: IncomingEvent) -> EventOutcome:
        """Single events fail loudly (INVALID_ARGUMENT / ALREADY_EXISTS) where a batch reports REJECTED."""
        outcome = await self.coalescer.submit(incoming)
        if outcome.status == EventStatus.REJECTED and outcome.rejection_reason in ("EVENT_IN_FUTURE", "EVENT_TOO_OLD"):
            raise InvalidArgument(
                outcome.rejection_reason,
                f"event.occurred_at: {outcome.rejection_reason.replace('_', ' ').lower()}",
                field_violations=[("event.occurred_at", "outside the accepted time window")],
                metadata={"event_id": incoming.event.event_id},
            )
        if outcome.rejection_reason == "IDEMPOTENCY_KEY_REUSED":
            raise idempotency_key_reused(incoming.event.event_id)
        return outcome

    async def record(self, batch: Sequence[IncomingEvent]) -> list[EventOutcome]:
        """Decide and persist the batch (one transaction), then credit its awards (one wallet call)."""
        return await self._credit(await self._decide_batch(batch))

    async def drain(self) -> None:
        """Shutdown: wait for the coalesced events in flight."""
        await self.coalescer.drain()

    async def _decide_batch(self, batch: Sequence[IncomingEvent]) -> list[tuple[EventOutcome, PendingCredit | None]]:
        now = self._clock.now()
        metrics.BATCH_SIZE.observe(len(batch))
        with metrics.PHASE.labels("decide").time():
            # a concurrent batch may store one of these event ids (another user's): retried, it is a replay
            return await self._db.retrying(lambda: self._decide_with_latest_rules(batch, now))

    async def _credit(self, decided: list[tuple[EventOutcome, PendingCredit | None]]) -> list[EventOutcome]:
        credits = list({c.request_id: c for _, c in decided if c is not None}.values())
        transactions: dict[str, str] = {}
        try:
            with metrics.PHASE.labels("credit").time():
                transactions = await self._crediting.send(credits)
        except Exception:  # decided and durable: the reconciliation loop sends them
            log.exception("credit_after_commit_failed", credits=len(credits))
        outcomes = []
        for outcome, credit in decided:
            if credit is not None and credit.request_id in transactions:
                outcome = replace(outcome, wallet_transaction_id=transactions[credit.request_id])
            metrics.EVENTS.labels(outcome.status.name).inc()
            outcomes.append(outcome)
        return outcomes

    async def _decide_with_latest_rules(
        self, batch: Sequence[IncomingEvent], now: datetime
    ) -> list[tuple[EventOutcome, PendingCredit | None]]:
        """The cached rule versions are checked under the users' locks; if a newer one exists, reload and redo."""
        for _ in range(3):
            try:
                return await self._decide(batch, now, await self._rules.cached())
            except _StaleRulesError:
                await self._rules.versions()
        return await self._decide(batch, now, await self._rules.versions(), check=False)

    async def _decide(
        self, batch: Sequence[IncomingEvent], now: datetime, versions: list[Rules], *, check: bool = True
    ) -> list[tuple[EventOutcome, PendingCredit | None]]:
        """Per event (in order): its outcome and the credit to send (new or still pending)."""
        results: list[tuple[EventOutcome, PendingCredit | None] | None] = [None] * len(batch)
        abuse = versions[-1].abuse
        accepted: list[tuple[int, IncomingEvent]] = []
        for index, incoming in enumerate(batch):
            problem = timing_problem(incoming.event.occurred_at, now, abuse)
            if problem:
                results[index] = (_rejected(incoming.event.event_id, problem), None)
            else:
                accepted.append((index, incoming))
        if accepted:
            async with self._db.transaction() as tx:
                users = await tx.batch.lock_batch(
                    [i.event.user_id for _, i in accepted], [i.event.device_id for _, i in accepted]
                )
                # the list in hand, not the shared cache (a concurrent reload may have replaced it)
                if check and versions[-1].version != users.rules_version:
                    raise _StaleRulesError
                await self._decide_accepted(tx, accepted, now, versions, users, results)
        return [r for r in results if r is not None]

    async def _decide_accepted(
        self,
        tx: Session,
        accepted: list[tuple[int, IncomingEvent]],
        now: datetime,
        versions: list[Rules],
        users: LockedUsers,
        results: list[tuple[EventOutcome, PendingCredit | None] | None],
    ) -> None:
        timed: list[tuple[int, IncomingEvent, Rules, date]] = []
        for index, incoming in accepted:
            rules = applicable(versions, incoming.event.occurred_at)
            timed.append((index, incoming, rules, rules.local_day(incoming.event.occurred_at)))
        replays, known = await tx.batch.read_batch(
            [(i.event, day) for _, i, _, day in timed], users, lookback(versions)
        )
        facts = BatchFacts(known, now, versions[-1].abuse.velocity_max_events_per_minute)
        first: dict[str, int] = {}  # event id -> index of its first occurrence in this batch
        new_events: list[NewEvent] = []
        held: list[NewHeld] = []
        credits: list[tuple[PendingCredit, date]] = []
        for index, incoming, rules, day in timed:
            event_id = incoming.event.event_id
            if event_id in replays or event_id in first:
                continue
            first[event_id] = index
            outcome, credit, new, hold = _evaluate(incoming, rules, day, facts)
            results[index] = (outcome, credit)
            new_events.append(new)
            if hold is not None:
                held.append(hold)
            if credit is not None:
                credits.append((credit, day))
        paid_by = one_credit_per_user_day(credits)
        for index in first.values():
            outcome, credit = results[index]  # type: ignore[misc]
            if credit is not None:
                results[index] = (outcome, paid_by[credit.request_id])
        new_events = [
            replace(n, stored=replace(n.stored, credit_request_id=paid_by[n.stored.credit_request_id].request_id))
            if n.stored.credit_request_id else n
            for n in new_events
        ]
        if new_events:
            payers = list({c.request_id: c for c in paid_by.values()}.values())
            await tx.batch.write(now, new_events, held, payers, facts.final_writes(), users.versions)

        by_index = dict(accepted)
        for index, incoming in accepted:
            event_id = incoming.event.event_id
            if event_id in replays:
                results[index] = _replay(replays[event_id], incoming)
            elif first[event_id] != index:  # a repeat within this batch: same as a replay of the first
                original_outcome, credit = results[first[event_id]]  # type: ignore[misc]
                if by_index[first[event_id]].fingerprint != incoming.fingerprint:
                    results[index] = (_rejected(event_id, "IDEMPOTENCY_KEY_REUSED"), None)
                else:
                    results[index] = (replace(original_outcome, status=EventStatus.DUPLICATE), credit)


class _StaleRulesError(Exception):
    """A newer rules version was stored since the cache was loaded."""


def _rejected(event_id: str, reason: str) -> EventOutcome:
    return EventOutcome(event_id, EventStatus.REJECTED, 0, rejection_reason=reason)


def _evaluate(
    incoming: IncomingEvent, rules: Rules, day: date, facts: BatchFacts
) -> tuple[EventOutcome, PendingCredit | None, NewEvent, NewHeld | None]:
    """Evaluate one first-seen event against the batch facts and apply its effects to them."""
    event = incoming.event
    decision = facts.decide(event, rules, day)
    held_id = ""
    hold: NewHeld | None = None
    if decision.status == EventStatus.HELD_FOR_REVIEW:
        held_id = "held_" + uuid.uuid4().hex[:20]
        reason = decision.hold_reason.value if decision.hold_reason else ""
        hold = NewHeld(held_id, event, day, decision.points, decision.sponsored, reason)
    credit: PendingCredit | None = None
    if decision.status == EventStatus.AWARDED:
        credit = PendingCredit(
            event_credit_id(event.event_id), event.user_id, decision.points, event.type.name.lower(), event.event_id
        )
    stored = StoredEvent(
        event.event_id, incoming.fingerprint, event.user_id, decision.status, decision.points_awarded,
        decision.breakdown, decision.rejection_reason, held_id, credit.request_id if credit else "",
    )
    outcome = EventOutcome(
        event.event_id, decision.status, decision.points_awarded, decision.breakdown,
        decision.rejection_reason, "", held_id,
    )
    return outcome, credit, NewEvent(event, stored, day), hold


def _replay(replay: Replay, incoming: IncomingEvent) -> tuple[EventOutcome, PendingCredit | None]:
    """A stored event's result; a still-pending credit is resent (a retry repairs a lost credit)."""
    stored = replay.stored
    if stored.fingerprint != incoming.fingerprint:
        return _rejected(stored.event_id, "IDEMPOTENCY_KEY_REUSED"), None
    outcome = EventOutcome(
        stored.event_id, EventStatus.DUPLICATE, stored.points, stored.breakdown, stored.rejection_reason,
        replay.wallet_transaction_id, stored.held_earning_id,
    )
    return outcome, replay.pending_credit
