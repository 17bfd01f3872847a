"""Rules, challenges, joins, held-earning reviews and the daily summary."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import structlog

from earning.domain import held as review
from earning.domain.challenge import Challenge, Participation, validate_challenge
from earning.domain.credit import FailedCredit, PendingCredit
from earning.domain.evaluation import early_join_bonus
from earning.domain.held import HeldEarning
from earning.domain.model import ActivityType, RuleApplication, Rules, validate_rules
from earning.use_cases import commands
from earning.use_cases.commands import R, Reply
from earning.use_cases.crediting import Crediting
from earning.use_cases.ports import Database, Session
from earning.use_cases.recording import event_credit_id
from earning.use_cases.rulebook import RuleBook
from points_platform.clock import Clock
from points_platform.errors import Aborted, FailedPrecondition, NotFound

log = structlog.get_logger("earning.admin")

def join_credit_id(challenge_id: str, user_id: str) -> str:
    return "earning-join-" + hashlib.sha256(f"{challenge_id}\n{user_id}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class JoinResult:
    participation: Participation
    bonus_awarded: int
    breakdown: tuple[RuleApplication, ...] = ()


@dataclass(frozen=True)
class TypeSummary:
    type: ActivityType
    earned: int
    cap: int


@dataclass(frozen=True)
class DailySummary:
    day: date
    types: tuple[TypeSummary, ...]
    total_earned: int
    total_cap: int
    streak_days: int
    held_points: int
    pending_credit_points: int  # decided, on its way to the wallet
    failed_credit_points: int  # refused by the wallet, dead-lettered


class Administration:
    def __init__(self, database: Database, clock: Clock, rules: RuleBook, crediting: Crediting) -> None:
        self._db = database
        self._clock = clock
        self._rules = rules
        self._crediting = crediting

    # --- rules -------------------------------------------------------------------------------

    async def update_rules(self, cmd: commands.UpdateRules, reply: Reply[Rules, R]) -> R:
        validate_rules(cmd.rules)
        new, expected_version = cmd.rules, cmd.expected_version

        async def effect(tx: Session) -> R:
            await tx.admin.lock_rules()
            latest = await tx.admin.latest_rule_version()
            if expected_version and expected_version != latest:
                raise Aborted(
                    "RULES_VERSION_MISMATCH", f"rules are at version {latest}, not {expected_version}",
                    metadata={"current_version": str(latest)},
                )
            versions = await tx.admin.all_rules()
            now = self._clock.now()
            last_effective = versions[-1].effective_from if versions else None
            effective = max(now, last_effective) if last_effective else now
            await tx.admin.insert_rules(replace(new, version=latest + 1), effective, now)
            return reply.of(await _rules_version(tx, latest + 1))

        async def legacy(tx: Session, stored: dict[str, Any]) -> R:
            return reply.of(await _rules_version(tx, int(stored["version"])))

        return await self._db.idempotent(cmd.key, reply.type, effect, legacy)

    async def current_rules(self) -> Rules:
        return await self._rules.current()

    # --- challenges --------------------------------------------------------------------------

    async def create_challenge(self, cmd: commands.CreateChallenge, reply: Reply[Challenge, R]) -> R:
        spec = validate_challenge(cmd.spec)

        async def effect(tx: Session) -> R:
            challenge = Challenge("ch_" + uuid.uuid4().hex[:20], spec, 0, self._clock.now())
            await tx.admin.insert_challenge(challenge)
            return reply.of(await _stored_challenge(tx, challenge.challenge_id))

        async def legacy(tx: Session, stored: dict[str, Any]) -> R:
            return reply.of(await _stored_challenge(tx, str(stored["challenge_id"])))

        return await self._db.idempotent(cmd.key, reply.type, effect, legacy)

    async def get_challenge(self, challenge_id: str) -> Challenge:
        async with self._db.reading() as tx:
            challenge = await tx.admin.get_challenge(challenge_id)
        if challenge is None:
            raise _challenge_not_found(challenge_id)
        return challenge

    async def list_challenges(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Challenge]:
        async with self._db.reading() as tx:
            return await tx.admin.list_challenges(region, active_at, after, limit)

    async def join_challenge(self, cmd: commands.JoinChallenge, reply: Reply[JoinResult, R]) -> R:
        challenge_id, user_id = cmd.challenge_id, cmd.user_id
        credit: list[PendingCredit] = []

        async def effect(tx: Session) -> R:
            credit.clear()
            challenge = await tx.admin.get_challenge(challenge_id, lock=True)
            now = self._clock.now()
            if challenge is None:
                raise _challenge_not_found(challenge_id)
            existing = await tx.admin.get_participation(challenge_id, user_id)
            if existing is not None:
                return reply.of(JoinResult(existing, 0))
            if now >= challenge.spec.end_time:
                raise FailedPrecondition(
                    "CHALLENGE_ENDED", "the challenge is over", metadata={"challenge_id": challenge_id}
                )
            spec = challenge.spec
            early, granted, _ = early_join_bonus(
                spec.start_time, spec.early_join_window_seconds, spec.early_join_bonus_points,
                challenge.budget_remaining, now,
            )
            participation = Participation(challenge_id, user_id, now, early, granted)
            await tx.admin.insert_participation(participation)
            if granted:
                if challenge.budget_remaining is not None:
                    await tx.activity.charge_budget(challenge_id, granted, now)
                entry = PendingCredit(
                    join_credit_id(challenge_id, user_id), user_id, granted, "early_join_bonus", challenge_id
                )
                await tx.outbox.add_credit(entry, now)
                credit.append(entry)
            return reply.of(JoinResult(participation, granted))

        async def legacy(tx: Session, stored: dict[str, Any]) -> R:
            p = stored["participation"]
            joined = Participation(
                p["challenge_id"], p["user_id"], datetime.fromisoformat(p["join_time"]), p["early"], int(p["bonus"])
            )
            return reply.of(JoinResult(joined, int(stored["bonus_awarded"])))

        result = await self._db.idempotent(cmd.key, reply.type, effect, legacy)
        if credit:
            await self._crediting.send(credit)
        return result

    # --- held earnings -----------------------------------------------------------------------

    async def list_held(
        self, user_id: str, state: int, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[HeldEarning, str]]:
        async with self._db.reading() as tx:
            held = await tx.admin.list_held(user_id, state, after, limit)
            return [(h, await self._transaction_of(tx, h)) for h in held]

    async def _transaction_of(self, tx: Session, held: HeldEarning) -> str:
        if not held.credit_request_id:
            return ""
        return (await tx.outbox.credit_state(held.credit_request_id))[1]

    async def resolve_held(
        self, cmd: commands.ResolveHeldEarning, reply: Reply[HeldEarning, R]
    ) -> tuple[R, str]:
        """The stored reply (the held earning as resolved) and the wallet transaction its approved
        credit became, which is known only once the credit lands after the commit ('' until then)."""
        held_earning_id, approve = cmd.held_earning_id, cmd.approve
        credit: list[PendingCredit] = []

        async def effect(tx: Session) -> R:
            credit.clear()
            held = await tx.admin.get_held(held_earning_id, lock=True)
            if held is None:
                raise NotFound("HELD_EARNING_NOT_FOUND", metadata={"held_earning_id": held_earning_id})
            if held.state != review.PENDING:
                raise FailedPrecondition(
                    "HELD_EARNING_ALREADY_RESOLVED", "the held earning was already resolved",
                    metadata={"held_earning_id": held_earning_id},
                )
            now = self._clock.now()
            credit_id = ""
            if approve:
                entry = PendingCredit(
                    event_credit_id(held.event_id), held.user_id, held.points, held.type.name.lower(), held.event_id
                )
                await tx.outbox.add_credit(entry, now)
                credit.append(entry)
                credit_id = entry.request_id
                await tx.activity.add_to_counters(
                    held.user_id, held.day, held.type.value, credited=held.points, held=-held.points
                )
            else:
                await tx.activity.add_to_counters(held.user_id, held.day, held.type.value, held=-held.points)
                for challenge_id, points in held.sponsored:
                    await tx.activity.refund_budget(challenge_id, points)
            state = review.APPROVED if approve else review.REJECTED
            await tx.admin.resolve_held(held_earning_id, state, now, cmd.reviewer, cmd.note, credit_id)
            return reply.of(await _stored_held(tx, held_earning_id))

        async def legacy(tx: Session, stored: dict[str, Any]) -> R:
            return reply.of(await _stored_held(tx, str(stored["held_earning_id"])))

        result = await self._db.idempotent(cmd.key, reply.type, effect, legacy)
        if credit:
            await self._crediting.send(credit)
        async with self._db.reading() as tx:
            return result, await self._transaction_of(tx, await _stored_held(tx, held_earning_id))

    # --- dead-lettered credits ----------------------------------------------------------------

    async def list_failed_credits(
        self, user_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[FailedCredit]:
        async with self._db.reading() as tx:
            return await tx.outbox.list_failed(user_id, after, limit)

    async def requeue_failed_credits(
        self, cmd: commands.RequeueFailedCredits, reply: Reply[tuple[list[str], list[str]], R]
    ) -> R:
        """Dead letter -> outbox for the named credits, then one send at once (what fails stays
        pending for the reconciliation loop). Unknown ids refuse the whole request (NOT_FOUND)."""
        requeued: list[PendingCredit] = []

        async def effect(tx: Session) -> R:
            requeued.clear()
            result = await tx.outbox.requeue(cmd.credit_ids)
            if result.unknown:
                raise NotFound(
                    "CREDIT_NOT_FOUND", f"no credit {result.unknown[0]}",
                    metadata={"credit_id": result.unknown[0], "unknown": str(len(result.unknown))},
                )
            requeued.extend(result.requeued)
            return reply.of(([c.request_id for c in result.requeued], list(result.unchanged)))

        async def legacy(tx: Session, stored: dict[str, Any]) -> R:
            return reply.of((list(stored["requeued"]), list(stored["unchanged"])))

        answer = await self._db.idempotent(cmd.key, reply.type, effect, legacy)
        if requeued:
            log.info("failed_credits_requeued", count=len(requeued))
            await self._crediting.send(requeued)
        return answer

    # --- summary -----------------------------------------------------------------------------

    async def daily_summary(self, user_id: str, day: date | None) -> DailySummary:
        rules = await self._rules.current()
        when = day or rules.local_day(self._clock.now())
        async with self._db.reading() as tx:
            counters = await tx.activity.counters(user_id, when)
            held = await tx.admin.held_points_on(user_id, when)
            streak = await tx.activity.get_streak(user_id)
            pending, failed = await tx.outbox.uncredited_points_on(user_id, when)
        today = rules.local_day(self._clock.now())
        # A streak is current while its last day is today or yesterday.
        streak_days = streak.days if streak.last_day is not None and (today - streak.last_day).days <= 1 else 0
        types = tuple(
            TypeSummary(t, counters.get(t.value, (0, 0, 0))[0], rule.daily_cap)
            for t, rule in sorted(rules.activity_rules.items())
        )
        total = sum(c[1] for c in counters.values())
        return DailySummary(
            day=when, types=types, total_earned=total, total_cap=rules.daily_total_cap, streak_days=streak_days,
            held_points=held, pending_credit_points=pending, failed_credit_points=failed,
        )


def _challenge_not_found(challenge_id: str) -> NotFound:
    return NotFound("CHALLENGE_NOT_FOUND", f"no challenge {challenge_id}", metadata={"challenge_id": challenge_id})


async def _rules_version(tx: Session, version: int) -> Rules:
    for rules in await tx.admin.all_rules():
        if rules.version == version:
            return rules
    raise NotFound("RULES_VERSION_NOT_FOUND")


async def _stored_challenge(tx: Session, challenge_id: str) -> Challenge:
    challenge = await tx.admin.get_challenge(challenge_id)
    if challenge is None:
        raise _challenge_not_found(challenge_id)
    return challenge


async def _stored_held(tx: Session, held_earning_id: str) -> HeldEarning:
    held = await tx.admin.get_held(held_earning_id)
    if held is None:
        raise NotFound("HELD_EARNING_NOT_FOUND", metadata={"held_earning_id": held_earning_id})
    return held
