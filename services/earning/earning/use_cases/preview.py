"""PreviewEarning: a dry run of a rules document for one event, decided as recording decides it.

The user's state (counters, paid targets and milestones, recent events, streak, receive-time
bucket, devices, joined challenges and their budgets) is read in one read-only snapshot, so the
database itself refuses any write; the event is then evaluated twice with the pure rules, once
under the current versions exactly as `Recorder` would now, once under the proposed rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from earning.domain.batch import BatchFacts, KnownFacts, lookback
from earning.domain.evaluation import Decision, timing_problem
from earning.domain.model import AbuseRule, ActivityEvent, EventStatus, Rules, validate_rules
from earning.use_cases import commands
from earning.use_cases.ports import Database
from earning.use_cases.rulebook import RuleBook, applicable
from points_platform.clock import Clock


@dataclass(frozen=True)
class Preview:
    current: Decision  # under the versions in force (the one the event's occurred_at selects)
    proposed: Decision  # under the proposed rules, as if in force for the event
    current_version: int


class Previewer:
    def __init__(self, database: Database, clock: Clock, rules: RuleBook) -> None:
        self._db = database
        self._clock = clock
        self._rules = rules

    async def preview(self, cmd: commands.PreviewEarning) -> Preview:
        """Raises RuleError for rules UpdateRules would refuse. An event id already recorded is
        evaluated as a new event: its stored effects are part of the user's history."""
        event, proposed = cmd.event, validate_rules(cmd.rules)
        now = self._clock.now()
        async with self._db.snapshot() as tx:
            versions = await self._rules.versions(tx)
            latest = versions[-1]
            current = applicable(versions, event.occurred_at)
            trial = replace(proposed, version=latest.version + 1, effective_from=now)
            users = await tx.batch.peek_users([event.user_id], latest.version)
            days = [(event, current.local_day(event.occurred_at)), (event, trial.local_day(event.occurred_at))]
            _, known = await tx.batch.read_batch(days, users, lookback([*versions, trial]), lock=False)
        return Preview(
            _decide(known, event, current, latest.abuse, now),
            _decide(known, event, trial, trial.abuse, now),
            latest.version,
        )


def _decide(known: KnownFacts, event: ActivityEvent, rules: Rules, abuse: AbuseRule, now: datetime) -> Decision:
    """`abuse`: the limits in force at receipt (the latest version's, as recording uses them)."""
    problem = timing_problem(event.occurred_at, now, abuse)
    if problem:
        return Decision(EventStatus.REJECTED, 0, 0, (), rejection_reason=problem)
    facts = BatchFacts(known, now, abuse.velocity_max_events_per_minute)
    return facts.decide(event, rules, rules.local_day(event.occurred_at))
