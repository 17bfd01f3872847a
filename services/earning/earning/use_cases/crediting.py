"""Sending decided credits to the wallet, and the reconciliation loop that retries the pending ones.

A credit the wallet refuses for good (the adapter tells which refusals are final) is moved to the
dead letter on that first refusal: no longer pending, never resent, counted, logged at error
level and visible in the `points_earning_credits_failed` gauge until an operator requeues it.
A credit the wallet fails on its side (INTERNAL/UNKNOWN) even when sent alone follows it there
after `wallet_error_limit` such sends: a poison entry is retried a few times, not forever.
A credit refused because its user is suspended (USER_SUSPENDED) is held: it stays pending and is
resent only every `suspended_retry_seconds`, so the points reach the user after reinstatement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from earning.store import outbox
from earning.store.outbox import PendingCredit
from points_platform.clock import Clock

log = structlog.get_logger("earning.credits")

POINTS_CREDITED = Counter("points_earning_points_credited_total", "Points credited to the wallet by earning")
CREDITS_PENDING = Gauge("points_earning_credits_pending", "Credits decided but not yet confirmed by the wallet")
CREDITS_FAILED = Gauge(
    "points_earning_credits_failed", "Credits the wallet refused for good, waiting in the dead letter for an operator"
)
CREDITS_DEAD_LETTERED = Counter(
    "points_earning_credits_dead_lettered_total", "Credits moved to the dead letter, by the wallet's refusal",
    ["reason"],
)


@dataclass
class CreditReport:
    """The wallet's answer to a send: credited, refused for good, or failed this time (the rest)."""

    credited: dict[str, str] = field(default_factory=dict)  # request id -> wallet transaction id
    refused: dict[str, str] = field(default_factory=dict)  # request id -> why, final: dead-lettered
    error: str = ""  # why the others failed this time: retried
    # failed alone with the wallet's own error (INTERNAL/UNKNOWN): retried up to a limit
    suspect: dict[str, str] = field(default_factory=dict)
    # refused because the user is suspended: held, resent after suspended_retry_seconds
    held: dict[str, str] = field(default_factory=dict)


# A suspect counts against its credit only while the wallet works for others (it credited something
# within this window, this send included): a wallet failing everything is an outage to wait out,
# not a reason to dead-letter every credit.
WALLET_WORKS_WINDOW_SECONDS = 60.0


class CreditPort(Protocol):
    async def credit(self, entries: Sequence[PendingCredit]) -> CreditReport: ...


class Crediting:
    def __init__(
        self, engine: AsyncEngine, wallet: CreditPort, clock: Clock, *, min_age_seconds: float,
        interval_seconds: float, wallet_error_limit: int = 5, suspended_retry_seconds: float = 300.0,
    ):
        self._engine = engine
        self._wallet = wallet
        self._clock = clock
        self._min_age = timedelta(seconds=min_age_seconds)
        self._interval = interval_seconds
        self._wallet_error_limit = wallet_error_limit
        self._suspended_retry = timedelta(seconds=suspended_retry_seconds)
        self._last_credited: datetime | None = None  # when the wallet last credited something

    async def send(self, credits: Sequence[PendingCredit]) -> dict[str, str]:
        """Credit now; what fails stays pending for the reconciliation loop (wallet ids are safe to
        resend), what the wallet refuses for good goes to the dead letter."""
        if not credits:
            return {}
        report = await self._wallet.credit(credits)
        done = report.credited
        now = self._clock.now()
        if done:
            self._last_credited = now
        wallet_works = self._last_credited is not None and (
            now - self._last_credited <= timedelta(seconds=WALLET_WORKS_WINDOW_SECONDS)
        )
        suspect = report.suspect if wallet_works else {}
        answered = done.keys() | report.refused.keys() | suspect.keys() | report.held.keys()
        failed = [c.request_id for c in credits if c.request_id not in answered]
        async with self._engine.connect() as conn:  # one statement: atomic without BEGIN/COMMIT
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            dead = await outbox.mark_sent(
                conn, done, report.refused, failed, report.error, suspect, self._wallet_error_limit, now,
                held=report.held,
            )
        POINTS_CREDITED.inc(sum(c.amount for c in credits if c.request_id in done))
        if report.held:
            log.info("wallet_credits_held_user_suspended", credits=len(report.held))
        for letter in dead:
            CREDITS_DEAD_LETTERED.labels(letter.reason).inc()
            log.error(
                "wallet_credit_dead_lettered", request_id=letter.credit.request_id, user_id=letter.credit.user_id,
                amount=letter.credit.amount, reference=letter.credit.reference, reason=letter.reason,
                attempts=letter.attempts,
            )
        return done

    async def reconcile_once(self, limit: int = 1000) -> int:
        """Resend the pending credits older than the minimum age (by the service clock: a test steps
        this pass and moves its clock); the number credited."""
        async with self._engine.connect() as conn:
            now = self._clock.now()
            due = await outbox.due_credits(conn, now - self._min_age, limit, held_before=now - self._suspended_retry)
            pending, failed = await outbox.outbox_counts(conn)
        CREDITS_PENDING.set(pending)
        CREDITS_FAILED.set(failed)
        if not due:
            return 0
        done = await self.send(due)
        log.info("credits_reconciled", due=len(due), credited=len(done))
        return len(done)

    async def run_reconciliation(self) -> None:
        """Background job: forever, retry what the wallet did not confirm."""
        while True:
            try:
                await self.reconcile_once()
            except Exception:  # a database hiccup must not end the loop
                log.exception("reconciliation_failed")
            await asyncio.sleep(self._interval)
