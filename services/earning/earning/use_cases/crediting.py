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
from datetime import datetime, timedelta

import structlog

from earning import metrics
from earning.domain.credit import PendingCredit
from earning.use_cases.ports import CreditPort, Database
from points_platform.clock import Clock

log = structlog.get_logger("earning.credits")


# A suspect counts against its credit only while the wallet works for others (it credited something
# within this window, this send included): a wallet failing everything is an outage to wait out,
# not a reason to dead-letter every credit.
WALLET_WORKS_WINDOW_SECONDS = 60.0


class Crediting:
    def __init__(
        self, database: Database, wallet: CreditPort, clock: Clock, *, min_age_seconds: float,
        interval_seconds: float, wallet_error_limit: int = 5, suspended_retry_seconds: float = 300.0,
    ):
        self._db = database
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
        async with self._db.autocommit() as tx:  # one statement: atomic without BEGIN/COMMIT
            dead = await tx.outbox.mark_sent(
                done, report.refused, failed, report.error, suspect, self._wallet_error_limit, now,
                held=report.held,
            )
        metrics.POINTS_CREDITED.inc(sum(c.amount for c in credits if c.request_id in done))
        if report.held:
            log.info("wallet_credits_held_user_suspended", credits=len(report.held))
        for letter in dead:
            metrics.CREDITS_DEAD_LETTERED.labels(letter.reason).inc()
            log.error(
                "wallet_credit_dead_lettered", request_id=letter.credit.request_id, user_id=letter.credit.user_id,
                amount=letter.credit.amount, reference=letter.credit.reference, reason=letter.reason,
                attempts=letter.attempts,
            )
        return done

    async def reconcile_once(self, limit: int = 1000) -> int:
        """Resend the pending credits older than the minimum age (by the service clock: a test steps
        this pass and moves its clock); the number credited."""
        async with self._db.reading() as tx:
            now = self._clock.now()
            due = await tx.outbox.due_credits(now - self._min_age, limit, held_before=now - self._suspended_retry)
            pending, failed = await tx.outbox.outbox_counts()
        metrics.CREDITS_PENDING.set(pending)
        metrics.CREDITS_FAILED.set(failed)
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
