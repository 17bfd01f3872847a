"""Holds: reserve (with its time to live), commit, release and refund; the sweeper that expires them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from points_platform.clock import Clock
from wallet import domain
from wallet.config import WalletSettings
from wallet.domain import Currency
from wallet.use_cases.commands import CommitHold, RefundHold, ReleaseHold, Reserve, fingerprint
from wallet.use_cases.ports import HoldStore, ReserveSpec
from wallet.use_cases.results import HoldResult, HoldView

log = structlog.get_logger("wallet")


class Holds:
    def __init__(self, store: HoldStore, clock: Clock, settings: WalletSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        # Hold transactions (one connection each) wait here rather than overflow the pool: an
        # overflow connection is opened and closed per use, which costs more CPU (wallet and
        # PostgreSQL) than the transaction itself.
        self._slots = asyncio.Semaphore(max(1, settings.db_pool_size))

    async def reserve(self, cmd: Reserve, caller: str) -> HoldResult:
        currency = Currency(cmd.currency)
        domain.check_spend(currency)
        ttl = domain.check_ttl(
            cmd.ttl_seconds, self._settings.hold_default_ttl_seconds, self._settings.hold_max_ttl_seconds
        )
        now = self._clock.now()
        spec = ReserveSpec(
            request_id=cmd.request_id,
            fingerprint=fingerprint(cmd),
            user_id=cmd.user_id,
            currency=currency,
            amount=cmd.amount,
            reference=cmd.reference,
            expire_time=now + timedelta(seconds=ttl),
        )
        async with self._slots:
            return await self._store.reserve(spec, now)

    async def commit_hold(self, cmd: CommitHold, caller: str) -> HoldResult:
        async with self._slots:
            result = await self._store.commit(
                cmd.request_id, fingerprint(cmd), cmd.hold_id, cmd.amount, cmd.reason, self._clock.now()
            )
        log.info("hold_committed", hold_id=cmd.hold_id, amount=result.hold.committed_amount)
        return result

    async def release_hold(self, cmd: ReleaseHold, caller: str) -> HoldResult:
        async with self._slots:
            return await self._store.release(cmd.request_id, fingerprint(cmd), cmd.hold_id, self._clock.now())

    async def refund_hold(self, cmd: RefundHold, caller: str) -> HoldResult:
        async with self._slots:
            result, given = await self._store.refund(
                cmd.request_id, fingerprint(cmd), cmd.hold_id, cmd.amount, cmd.reason, self._clock.now()
            )
        if given:  # not on a replay
            log.info("hold_refunded", hold_id=cmd.hold_id, amount=given, refunded_total=result.hold.refunded_amount)
        return result

    async def get_hold(self, hold_id: str) -> HoldView:
        return await self._store.get(hold_id)

    async def sweep_expired_holds(self) -> int:
        """Release expired holds (one batch); returns how many."""
        count = await self._store.sweep_expired(self._clock.now(), self._settings.sweep_batch_size)
        if count:
            log.info("holds_expired", count=count)
        return count

    async def run_sweeper(self) -> None:
        """Background job: release expired holds forever."""
        while True:
            if await self.sweep_expired_holds() < self._settings.sweep_batch_size:
                await asyncio.sleep(self._settings.sweep_interval_seconds)
