"""Points expiry (off by default): the job that posts expired lots' remainders."""

from __future__ import annotations

import asyncio

import structlog

from points_platform.clock import Clock
from wallet import metrics
from wallet.config import WalletSettings
from wallet.use_cases.ports import LotStore

log = structlog.get_logger("wallet")


class Expiry:
    def __init__(self, store: LotStore, clock: Clock, settings: WalletSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    @property
    def enabled(self) -> bool:
        return self._settings.points_expiry_days > 0

    async def expire_points(self) -> int:
        """Post expired lots' remainders (one batch of accounts); returns the lots posted."""
        posted = await self._store.expire(self._clock.now(), self._settings.expiry_sweep_batch_size)
        if posted:
            amount = sum(e.amount for e in posted)
            metrics.points_expired(amount)
            log.info("points_expired", lots=len(posted), amount=amount)
        return len(posted)

    async def run_expiry(self) -> None:
        """Background job (only when expiry is on): expire points forever."""
        while True:
            if await self.expire_points() == 0:
                await asyncio.sleep(self._settings.expiry_sweep_interval_seconds)
