"""The facts of a whole batch of events, held in memory while its events are evaluated in order.

The store loads everything a batch can need in a few set-based queries (`KnownFacts`); the
events are then evaluated one after the other and each decision is applied back to these facts
(counters, paid targets and milestones, recent events, device accounts and account devices, streaks,
receive-time buckets, sponsor budgets), so the second event of a user sees the first exactly as if
it had been stored. What changed is collected for a few array writes at the end. Pure Python: no grpc, no sqlalchemy.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from earning.domain.challenge import Challenge, matching
from earning.domain.evaluation import ChallengeTerms, Decision, EventFacts, ReceiveRate, Streak, evaluate
from earning.domain.model import ActivityEvent, ActivityType, EventStatus, Rules

VELOCITY_WINDOW = timedelta(seconds=59.999)  # "the last minute", this event's instant included


def lookback(rules_versions: Iterable[Rules]) -> timedelta:
    """How far before an event the recent-event facts reach (velocity minute, decay windows)."""
    longest = max(
        (r.decay_window_seconds for rules in rules_versions for r in rules.activity_rules.values() if r.decay_after),
        default=0,
    )
    return max(VELOCITY_WINDOW, timedelta(seconds=longest))


@dataclass
class KnownFacts:
    """What the store holds for the batch's users, read under their locks."""

    streaks: dict[str, Streak]
    rates: dict[str, ReceiveRate]  # the users' receive-time buckets as last written
    capped_today: dict[tuple[str, date, int], int]  # (user, day, type) -> points counted against caps
    paid_targets: set[tuple[str, int, str]]  # (user, type, target)
    paid_milestones: set[tuple[str, str, str]]  # (user, game, milestone)
    recent: list[tuple[str, int, datetime]]  # accepted events (user, type, occurred_at) near the batch
    device_accounts: dict[tuple[str, date], set[str]]  # (device, day) -> accounts seen
    account_devices: dict[tuple[str, date], set[str]]  # (user, day) -> devices the user was seen on
    joined: dict[str, list[tuple[Challenge, datetime]]]  # user -> (challenge, join time), locked rows


@dataclass
class BatchWrites:
    """Everything the batch changes, aggregated for set-based writes."""

    counters: dict[tuple[str, date, int], list[int]] = field(default_factory=dict)  # -> [capped, credited, held]
    stored_counters: set[tuple[str, date, int]] = field(default_factory=set)  # of `counters`, those already stored
    paid_targets: set[tuple[str, int, str]] = field(default_factory=set)
    paid_milestones: set[tuple[str, str, str]] = field(default_factory=set)
    device_accounts: set[tuple[str, date, str]] = field(default_factory=set)
    budget_charges: dict[str, int] = field(default_factory=dict)  # challenge -> points
    # users with accepted events: their streak and receive-time bucket after the batch (final_writes)
    user_states: dict[str, tuple[Streak, ReceiveRate]] = field(default_factory=dict)


class BatchFacts:
    """In-memory facts of a batch: `facts_for` an event, then `apply` its decision."""

    def __init__(self, known: KnownFacts, received_at: datetime, receive_limit: int) -> None:
        """`receive_limit`: events per minute the receive-time buckets drain (the velocity limit in
        force now: receipt is now, whatever version an event's occurred_at selects)."""
        self._streaks = dict(known.streaks)
        self._rates = known.rates
        self._received_at = received_at
        self._receive_limit = receive_limit
        self._accepted_now: dict[str, int] = {}  # user -> accepted events in this batch
        self._capped: dict[tuple[str, date], dict[int, int]] = defaultdict(dict)  # (user, day) -> type -> points
        for (user, day, activity), points in known.capped_today.items():
            self._capped[(user, day)][activity] = points
        self._stored_counters = set(known.capped_today)
        self._paid_targets = set(known.paid_targets)
        self._paid_milestones = set(known.paid_milestones)
        self._by_user: dict[str, list[datetime]] = defaultdict(list)
        self._by_user_type: dict[tuple[str, int], list[datetime]] = defaultdict(list)
        for user, activity, at in sorted(known.recent, key=lambda r: r[2]):
            self._by_user[user].append(at)
            self._by_user_type[(user, activity)].append(at)
        self._devices = {key: set(users) for key, users in known.device_accounts.items()}
        self._account_devices = {key: set(devices) for key, devices in known.account_devices.items()}
        self._joined = known.joined
        self._spent = {c.challenge_id: c.budget_spent_points for joined in known.joined.values() for c, _ in joined}
        self.writes = BatchWrites()

    def streak(self, user_id: str) -> Streak:
        return self._streaks.get(user_id, Streak())

    def facts_for(self, event: ActivityEvent, rules: Rules, day: date, streak_days: int) -> EventFacts:
        """The facts `evaluate` needs. The device's account count includes this user and the user's device
        count this device, but the pair is recorded only by `apply`: a rejected event (e.g.
        NOT_A_PARTICIPANT) earned nothing and must not use up a place on the device or the account."""
        user, activity = event.user_id, event.type.value
        rule = rules.rule_for(event.type)
        today = self._capped.get((user, day), {})
        repetitions = 0
        if rule is not None and rule.decay_after:
            since = event.occurred_at - timedelta(seconds=rule.decay_window_seconds)
            repetitions = _count(self._by_user_type.get((user, activity), []), since, event.occurred_at)
        device_count = account_count = 0
        if event.device_id:
            accounts = self._devices.get((event.device_id, day), set())
            device_count = len(accounts) + (user not in accounts)
            devices = self._account_devices.get((user, day), set())
            account_count = len(devices) + (event.device_id not in devices)
        covered = matching(self._joined.get(user, []), event)
        by_occurrence = 1 + _count(self._by_user.get(user, []), event.occurred_at - VELOCITY_WINDOW, event.occurred_at)
        by_receipt = math.ceil(self._rate(user)) + 1
        return EventFacts(
            earned_today_type=today.get(activity, 0),
            earned_today_total=sum(today.values()),
            target_already_paid=bool(
                rule is not None and rule.once_per_target and event.target_id
                and (user, activity, event.target_id) in self._paid_targets
            ),
            milestone_already_paid=event.type == ActivityType.GAME_MILESTONE
            and (user, event.game_id, event.milestone_id) in self._paid_milestones,
            repetitions_in_window=repetitions,
            streak_days=streak_days,
            events_last_minute=max(by_occurrence, by_receipt),
            device_accounts_today=device_count,
            account_devices_today=account_count,
            challenges=[ChallengeTerms(c.challenge_id, c.spec.multiplier_bps, self._remaining(c)) for c in covered],
            is_challenge_participant=any(c.challenge_id == event.challenge_id for c in covered),
        )

    def decide(self, event: ActivityEvent, rules: Rules, day: date) -> Decision:
        """Evaluate a first-seen, timely event against these facts and, unless rejected, apply it
        (the next event of the user sees it)."""
        streak = self.streak(event.user_id).on_activity(day)
        decision = evaluate(event, rules, self.facts_for(event, rules, day, streak.length_on(day)))
        if decision.status != EventStatus.REJECTED:
            self.apply(event, decision, day, streak)
        return decision

    def final_writes(self) -> BatchWrites:
        """Everything the batch changes, with the streak and receive-time bucket of each user who
        had accepted events (derived once, at the end)."""
        self.writes.stored_counters = {key for key in self.writes.counters if key in self._stored_counters}
        self.writes.user_states = {
            user: (self._streaks[user], ReceiveRate(self._rate(user), self._received_at)) for user in self._accepted_now
        }
        return self.writes

    def _rate(self, user: str) -> float:
        """The user's receive-time bucket now: drained since last written, plus this batch's events."""
        stored = self._rates.get(user, ReceiveRate())
        return stored.drained(self._received_at, self._receive_limit) + self._accepted_now.get(user, 0)

    def _remaining(self, challenge: Challenge) -> int | None:
        if not challenge.spec.sponsor_budget_points:
            return None
        return challenge.spec.sponsor_budget_points - self._spent[challenge.challenge_id]

    def apply(self, event: ActivityEvent, decision: Decision, day: date, streak: Streak) -> None:
        """Make a decided (not rejected) event part of the facts the next events see."""
        user, activity = event.user_id, event.type.value
        self._streaks[user] = streak
        self._accepted_now[user] = self._accepted_now.get(user, 0) + 1
        held = decision.status == EventStatus.HELD_FOR_REVIEW
        today = self._capped[(user, day)]
        today[activity] = today.get(activity, 0) + decision.capped_points
        delta = self.writes.counters.setdefault((user, day, activity), [0, 0, 0])
        delta[0] += decision.capped_points
        delta[1] += decision.points_awarded
        delta[2] += decision.points if held else 0
        if decision.points > 0:
            if event.target_id and event.type != ActivityType.WATCH_TIME:
                target = (user, activity, event.target_id)
                self._paid_targets.add(target)
                self.writes.paid_targets.add(target)
            if event.type == ActivityType.GAME_MILESTONE:
                milestone = (user, event.game_id, event.milestone_id)
                self._paid_milestones.add(milestone)
                self.writes.paid_milestones.add(milestone)
        if event.device_id:
            accounts = self._devices.setdefault((event.device_id, day), set())
            if user not in accounts:
                accounts.add(user)
                self._account_devices.setdefault((user, day), set()).add(event.device_id)
                self.writes.device_accounts.add((event.device_id, day, user))
        for challenge_id, points in decision.sponsored:
            self._spent[challenge_id] += points
            self.writes.budget_charges[challenge_id] = self.writes.budget_charges.get(challenge_id, 0) + points
        if decision.status in _ACCEPTED:
            bisect.insort(self._by_user[user], event.occurred_at)
            bisect.insort(self._by_user_type[(user, activity)], event.occurred_at)


_ACCEPTED = frozenset({EventStatus.AWARDED, EventStatus.CAPPED, EventStatus.HELD_FOR_REVIEW})


def _count(times: list[datetime], since: datetime, until: datetime) -> int:
    """Entries of a sorted list within [since, until]."""
    return bisect.bisect_right(times, until) - bisect.bisect_left(times, since)


def group_joined(rows: Iterable[tuple[str, Challenge, datetime]]) -> dict[str, list[tuple[Challenge, datetime]]]:
    """user -> joined challenges; one Challenge object per id so budgets are shared."""
    by_id: dict[str, Challenge] = {}
    joined: dict[str, list[tuple[Challenge, datetime]]] = defaultdict(list)
    for user, challenge, join_time in rows:
        joined[user].append((by_id.setdefault(challenge.challenge_id, challenge), join_time))
    return dict(joined)
