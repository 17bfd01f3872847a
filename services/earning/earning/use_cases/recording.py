"""RecordActivity / RecordActivities / StreamActivities: decide and persist first, then credit.

Per event, inside one transaction that holds the user's row lock: look the event_id up (a
replay returns the stored result), gather the facts, evaluate the pure rules, write the event,
counters, budgets and the wallet credit into the outbox. After the commit the batch's credits
go to the wallet in one call; if the wallet is down they stay pending and the reconciliation
loop sends them later (the wallet request id is derived from the event id, so resending is
safe). The response says AWARDED as soon as the points are decided.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points_platform.clock import Clock
from points_platform.db import retry_serialization
from points_platform.errors import InvalidArgument, idempotency_key_reused

from earning.domain.challenge import matching
from earning.domain.evaluation import ChallengeTerms, Decision, EventFacts, Streak, evaluate, timing_problem
from earning.domain.model import ActivityEvent, ActivityType, EventStatus, RuleApplication, Rules
from earning.store import activity, admin, outbox
from earning.store.activity import StoredEvent
from earning.store.outbox import PendingCredit
from earning.use_cases.crediting import Crediting
from earning.use_cases.rulebook import RuleBook, applicable

EVENTS = Counter("points_earning_events_total", "Events evaluated", ["status"])


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


@dataclass(frozen=True)
class IncomingEvent:
    event: ActivityEvent
    fingerprint: str  # hash of the whole event: same id + different content = key reuse


class Recorder:
    def __init__(self, engine: AsyncEngine, clock: Clock, rules: RuleBook, crediting: Crediting) -> None:
        self._engine = engine
        self._clock = clock
        self._rules = rules
        self._crediting = crediting

    async def record_one(self, incoming: IncomingEvent) -> EventOutcome:
        """Single events fail loudly (INVALID_ARGUMENT / ALREADY_EXISTS) where a batch reports REJECTED."""
        outcome = (await self.record([incoming]))[0]
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
        now = self._clock.now()
        versions = await self._rules.versions()
        abuse = versions[-1].abuse
        outcomes: list[EventOutcome | None] = [None] * len(batch)
        accepted: list[tuple[int, IncomingEvent]] = []
        for index, incoming in enumerate(batch):
            problem = timing_problem(incoming.event.occurred_at, now, abuse)
            if problem:
                outcomes[index] = EventOutcome(incoming.event.event_id, EventStatus.REJECTED, 0, rejection_reason=problem)
            else:
                accepted.append((index, incoming))

        if accepted:

            async def attempt() -> list[tuple[int, EventOutcome, PendingCredit | None]]:
                async with self._engine.begin() as conn:
                    streaks = await activity.lock_users(conn, [i.event.user_id for _, i in accepted])
                    decided = []
                    for index, incoming in accepted:
                        outcome, credit = await self._decide(conn, incoming, now, versions, streaks)
                        decided.append((index, outcome, credit))
                    return decided

            decided = await retry_serialization(attempt)
            credits = [credit for _, _, credit in decided if credit is not None]
            unique = list({c.request_id: c for c in credits}.values())
            transactions = await self._crediting.send(unique)
            for index, outcome, credit in decided:
                if credit is not None and credit.request_id in transactions:
                    outcome = replace(outcome, wallet_transaction_id=transactions[credit.request_id])
                outcomes[index] = outcome
        for outcome in outcomes:
            assert outcome is not None
            EVENTS.labels(outcome.status.name).inc()
        return [o for o in outcomes if o is not None]

    async def _decide(
        self,
        conn: AsyncConnection,
        incoming: IncomingEvent,
        now: datetime,
        versions: list[Rules],
        streaks: dict[str, Streak],
    ) -> tuple[EventOutcome, PendingCredit | None]:
        event = incoming.event
        stored = await activity.find_event(conn, event.event_id)
        if stored is not None:
            return await self._replay(conn, stored, incoming)

        rules = applicable(versions, event.occurred_at)
        day = rules.local_day(event.occurred_at)
        streak = streaks[event.user_id].on_activity(day)
        facts = await self._facts(conn, event, rules, day, streak.length_on(day))
        decision = evaluate(event, rules, facts)

        held_id = ""
        credit: PendingCredit | None = None
        if decision.status != EventStatus.REJECTED:
            streaks[event.user_id] = streak
            await activity.save_streak(conn, event.user_id, streak)
            await self._apply_side_effects(conn, event, decision, day)
        if decision.status == EventStatus.HELD_FOR_REVIEW:
            held_id = "held_" + uuid.uuid4().hex[:20]
            await admin.insert_held(
                conn,
                admin.HeldEarning(
                    held_id, event.event_id, event.user_id, event.type, day, decision.points, decision.sponsored,
                    decision.hold_reason.value if decision.hold_reason else "", admin.PENDING, now, None, "", "", "",
                ),
            )
        if decision.status == EventStatus.AWARDED:
            credit = PendingCredit(
                event_credit_id(event.event_id), event.user_id, decision.points, event.type.name.lower(), event.event_id
            )
            await outbox.add_credit(conn, credit)
        record = StoredEvent(
            event.event_id, incoming.fingerprint, event.user_id, decision.status, decision.points_awarded,
            decision.breakdown, decision.rejection_reason, held_id, credit.request_id if credit else "",
        )
        await activity.insert_event(conn, event, record, day, now)
        outcome = EventOutcome(
            event.event_id, decision.status, decision.points_awarded, decision.breakdown,
            decision.rejection_reason, "", held_id,
        )
        return outcome, credit

    async def _replay(
        self, conn: AsyncConnection, stored: StoredEvent, incoming: IncomingEvent
    ) -> tuple[EventOutcome, PendingCredit | None]:
        if stored.fingerprint != incoming.fingerprint:
            reused = EventOutcome(
                stored.event_id, EventStatus.REJECTED, 0, rejection_reason="IDEMPOTENCY_KEY_REUSED"
            )
            return reused, None
        pending, transaction_id = None, ""
        if stored.credit_request_id:
            pending, transaction_id = await outbox.credit_state(conn, stored.credit_request_id)
        outcome = EventOutcome(
            stored.event_id, EventStatus.DUPLICATE, stored.points, stored.breakdown, stored.rejection_reason,
            transaction_id, stored.held_earning_id,
        )
        return outcome, pending  # a still-pending credit is resent: a retry repairs a lost credit

    async def _facts(
        self, conn: AsyncConnection, event: ActivityEvent, rules: Rules, day: date, streak_days: int
    ) -> EventFacts:
        day_counters = await activity.counters(conn, event.user_id, day)
        rule = rules.rule_for(event.type)
        target_paid = False
        if rule is not None and rule.once_per_target and event.target_id:
            target_paid = await activity.is_target_paid(conn, event.user_id, event.type, event.target_id)
        milestone_paid = False
        if event.type == ActivityType.GAME_MILESTONE:
            milestone_paid = await activity.is_milestone_paid(conn, event.user_id, event.game_id, event.milestone_id)
        repetitions = 0
        if rule is not None and rule.decay_after:
            since = event.occurred_at - timedelta(seconds=rule.decay_window_seconds)
            repetitions = await activity.count_events(conn, event.user_id, since, event.occurred_at, event.type)
        last_minute = 1 + await activity.count_events(conn, event.user_id, *activity.minute_window(event.occurred_at))
        device_accounts = 0
        if event.device_id:
            device_accounts = await activity.device_accounts_today(conn, event.device_id, day, event.user_id)
        joined = await activity.joined_challenges_locked(conn, event.user_id, event.occurred_at)
        covered = matching(joined, event)
        return EventFacts(
            earned_today_type=day_counters.get(event.type.value, (0, 0, 0))[0],
            earned_today_total=sum(c[0] for c in day_counters.values()),
            target_already_paid=target_paid,
            milestone_already_paid=milestone_paid,
            repetitions_in_window=repetitions,
            streak_days=streak_days,
            events_last_minute=last_minute,
            device_accounts_today=device_accounts,
            challenges=[ChallengeTerms(c.challenge_id, c.spec.multiplier_bps, c.budget_remaining) for c in covered],
            is_challenge_participant=any(c.challenge_id == event.challenge_id for c in covered),
        )

    async def _apply_side_effects(
        self, conn: AsyncConnection, event: ActivityEvent, decision: Decision, day: date
    ) -> None:
        held = decision.status == EventStatus.HELD_FOR_REVIEW
        await activity.add_to_counters(
            conn, event.user_id, day, event.type.value, capped=decision.capped_points,
            credited=decision.points_awarded, held=decision.points if held else 0,
        )
        if decision.points > 0:
            if event.target_id and event.type != ActivityType.WATCH_TIME:
                await activity.mark_target_paid(conn, event.user_id, event.type, event.target_id)
            if event.type == ActivityType.GAME_MILESTONE:
                await activity.mark_milestone_paid(conn, event.user_id, event.game_id, event.milestone_id)
        for challenge_id, points in decision.sponsored:
            await activity.charge_budget(conn, challenge_id, points)
