"""Sending decided credits to the wallet, and the reconciliation loop that retries the pending ones."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from earning.store import outbox
from earning.store.outbox import PendingCredit

log = structlog.get_logger("earning.credits")

POINTS_CREDITED = Counter("points_earning_points_credited_total", "Points credited to the wallet by earning")
CREDITS_PENDING = Gauge("points_earning_credits_pending", "Credits decided but not yet confirmed by the wallet")


class CreditPort(Protocol):
    async def credit(self, entries: Sequence[PendingCredit]) -> tuple[dict[str, str], str]: ...


class Crediting:
    def __init__(self, engine: AsyncEngine, wallet: CreditPort, *, min_age_seconds: float, interval_seconds: float):
        self._engine = engine
        self._wallet = wallet
        self._min_age = min_age_seconds
        self._interval = interval_seconds

    async def send(self, credits: Sequence[PendingCredit]) -> dict[str, str]:
        """Credit now; what fails stays pending for the reconciliation loop. Wallet ids are safe to resend."""
        if not credits:
            return {}
        done, error = await self._wallet.credit(credits)
        failed = [c.request_id for c in credits if c.request_id not in done]
        async with self._engine.connect() as conn:  # one statement: atomic without BEGIN/COMMIT
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await outbox.mark_sent(conn, done, failed, error)
        POINTS_CREDITED.inc(sum(c.amount for c in credits if c.request_id in done))
        return done

    async def reconcile_once(self, limit: int = 1000) -> int:
        """Resend due pending credits; the number credited."""
        async with self._engine.connect() as conn:
            due = await outbox.due_credits(conn, self._min_age, limit)
            CREDITS_PENDING.set(await outbox.pending_count(conn))
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
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("reconciliation_failed")
            await asyncio.sleep(self._interval)
