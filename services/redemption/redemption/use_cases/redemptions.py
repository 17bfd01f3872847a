"""The redemptions: Redeem, refunds, queries and the recovery loop (the saga itself runs in `saga_runner`);
entitlement uses (`entitlements`) and raffle draws (`raffles`) hang off the service."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from datetime import datetime, timedelta

import structlog

from points_platform.clock import Clock
from points_platform.errors import FailedPrecondition, NotFound
from points_platform.idempotency import check_same_request, fingerprint_from_digest
from points_platform.unit_of_work import Transaction, Transactions
from redemption import metrics
from redemption.config import RedemptionSettings
from redemption.domain.entitlements import refund_blocker
from redemption.domain.item import ItemKind
from redemption.domain.raffle import raffle_closed
from redemption.domain.saga import Saga, State, refund_refusal, start_refund
from redemption.use_cases.commands import RedeemCommand, RefundCommand
from redemption.use_cases.entitlements import EntitlementUses, shown
from redemption.use_cases.ports import (
    Catalog,
    EntitlementRepository,
    PeerRefusedError,
    PeerUnavailableError,
    SagaRepository,
    Wallet,
)
from redemption.use_cases.raffles import Raffles
from redemption.use_cases.records import EntitlementRow, SagaRecord, Transition
from redemption.use_cases.saga_runner import SagaRunner

log = structlog.get_logger("redemption")
# A saga driver: its task answers the transitions it wrote (SagaRunner.drive).
Driver = asyncio.Task[tuple[Transition, ...] | None]
# While the recovery loop is busy claiming (no sleep between passes) the gauge is recounted at most this often.
# Loop time, not the service clock: it paces the background loop; tests call recover_once()/refresh_metrics().
METRICS_INTERVAL_SECONDS = 5.0


def _raffle_closed(raffle_id: str, close: datetime | None) -> FailedPrecondition:
    return FailedPrecondition("RAFFLE_CLOSED", "the raffle's ticket sales are closed",
                              metadata={"raffle_id": raffle_id, "sales_close_time": close.isoformat() if close else ""})


# The wallet owns user suspension (docs/architecture.md, User suspension): its Reserve refuses a
# suspended user, the saga cancels with that reason, and Redeem answers it as its own refusal.
USER_SUSPENDED = "USER_SUSPENDED"


class RedemptionService:
    def __init__(self, transactions: Transactions, sagas: SagaRepository, entitlements: EntitlementRepository,
                 wallet: Wallet, catalog: Catalog, clock: Clock, settings: RedemptionSettings) -> None:
        self.transactions = transactions
        self.sagas = sagas
        self.entitlements = entitlements
        self.catalog = catalog
        self.clock = clock
        self.settings = settings
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.runner = SagaRunner(transactions, sagas, entitlements, wallet, catalog, clock, settings, self.owner)
        self.uses = EntitlementUses(transactions, entitlements, clock)
        self.raffles = Raffles(transactions, entitlements, catalog, clock)
        self._drivers: dict[str, Driver] = {}

    # -- Redeem ------------------------------------------------------------------------------

    async def redeem(self, cmd: RedeemCommand, wait_seconds: float | None) -> SagaRecord:
        """The redemption, or USER_SUSPENDED when the wallet refused to hold a suspended user's funds: the
        saga has then compensated (nothing stays reserved or held) and the caller gets the refusal."""
        record = await self._redeem(cmd, wait_seconds)
        saga = record.saga
        if saga.state is State.CANCELLED and saga.cancel_reason == USER_SUSPENDED:
            raise FailedPrecondition(
                USER_SUSPENDED, "the user is suspended", metadata={"redemption_id": saga.redemption_id}
            )
        return record

    async def _redeem(self, cmd: RedeemCommand, wait_seconds: float | None) -> SagaRecord:
        now = self.clock.now()
        refusal = await self._sale_refusal(cmd.item_id, now)
        if refusal is not None:
            # Nothing is reserved or held for a sale that cannot happen; a retry of an earlier Redeem
            # still gets its redemption.
            earlier = await self.sagas.by_request_id(cmd.request_id)
            if earlier is None:
                raise refusal
            return await self._replay(earlier, cmd, now, wait_seconds)
        saga = Saga(uuid.uuid4().hex, cmd.user_id, cmd.item_id, cmd.quantity, cmd.region, cmd.recipient_id)
        saga, logs = await self.runner.opening(saga)
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        record, created = await self.sagas.create(saga, cmd.request_id, cmd.fingerprint, now, self.owner, lease_until,
                                                  logs)
        if not created:
            return await self._replay(record, cmd, now, wait_seconds)
        rid = record.saga.redemption_id
        self.runner.opened(logs)
        task = self._start_driver(rid, record.saga)
        await self._wait(task, wait_seconds)
        if task.done() and not task.cancelled() and task.exception() is None:
            written = task.result()
            if written and written[-1].after.is_terminal:
                return record.followed_by(written)  # the only writes since the creation: no read back
        return await self.get(rid)

    async def _replay(self, record: SagaRecord, cmd: RedeemCommand, now: datetime,
                      wait_seconds: float | None) -> SagaRecord:
        """A Redeem whose request_id made a saga already: that saga (driven on if nobody drives it)."""
        check_same_request(fingerprint_from_digest(cmd.key.method, record.fingerprint), cmd.key)
        rid = record.saga.redemption_id
        if not record.saga.is_terminal and await self.sagas.acquire(rid, self.owner, now,
                                                                    self.settings.lease_seconds):
            await self._wait(self._start_driver(rid), wait_seconds)
        return await self.get(rid)

    async def _sale_refusal(self, item_id: str, now: datetime) -> FailedPrecondition | None:
        """RAFFLE_CLOSED for a ticket of a raffle whose sales closed (by this service's clock) or that was
        drawn. Unknown or unreachable items pass: the saga's QUOTE then decides (the catalog refuses a
        closed raffle's tickets too)."""
        try:
            info = await self.runner.item_facts(item_id)
        except (PeerRefusedError, PeerUnavailableError):
            return None
        item = info.snapshot
        if item.kind is not ItemKind.RAFFLE_TICKET:
            return None
        if raffle_closed(item, now) or await self.entitlements.is_drawn(item.raffle_id):
            return _raffle_closed(item.raffle_id, item.sales_close_time)
        return None

    def _start_driver(self, redemption_id: str, saga: Saga | None = None) -> Driver:
        task = self._drivers.get(redemption_id)
        if task is None or task.done():
            task = asyncio.create_task(self.runner.drive(redemption_id, saga), name=f"saga-{redemption_id}")
            self._drivers[redemption_id] = task
            task.add_done_callback(lambda t: self._forget(redemption_id, t))
        return task

    def _forget(self, redemption_id: str, task: Driver) -> None:
        if self._drivers.get(redemption_id) is task:
            del self._drivers[redemption_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("saga_driver_crashed", redemption_id=redemption_id, exc_info=task.exception())

    async def _wait(self, task: Driver, wait_seconds: float | None) -> None:
        """Wait for the saga up to the caller's deadline; it keeps running in the background after."""
        limit = self.settings.redeem_max_wait_seconds if wait_seconds is None else min(
            wait_seconds, self.settings.redeem_max_wait_seconds)
        if limit <= 0:
            return
        done, _ = await asyncio.wait({task}, timeout=limit)
        del done

    async def get(self, redemption_id: str) -> SagaRecord:
        record = await self.sagas.get(redemption_id, with_steps=True)
        if record is None:
            raise NotFound("REDEMPTION_NOT_FOUND", metadata={"redemption_id": redemption_id})
        return record

    async def list_redemptions(self, user_id: str, limit: int, after: tuple[datetime, str] | None) -> list[SagaRecord]:
        return await self.sagas.list_for_user(user_id, limit, after)

    async def list_all_redemptions(self, states: list[State], max_age_seconds: int, limit: int,
                                   after: tuple[datetime, str] | None) -> list[SagaRecord]:
        """Every user's redemptions (the operators' saga view); `max_age_seconds` 0 = any age."""
        created_after = self.clock.now() - timedelta(seconds=max_age_seconds) if max_age_seconds else None
        return await self.sagas.list_across_users(states, created_after, limit, after)

    async def list_entitlements(self, user_id: str, limit: int,
                                after: tuple[datetime, str] | None) -> list[EntitlementRow]:
        now = self.clock.now()
        return [shown(row, now) for row in await self.entitlements.list_for_user(user_id, limit, after)]

    # -- Refund ------------------------------------------------------------------------------

    async def refund(self, cmd: RefundCommand, wait_seconds: float | None) -> SagaRecord:
        request_id, fingerprint, redemption_id = cmd.request_id, cmd.fingerprint, cmd.redemption_id
        record = await self.get(redemption_id)
        if record.refund_request_id:
            if record.refund_request_id != request_id:
                raise FailedPrecondition("ALREADY_REFUNDED", metadata={"redemption_id": redemption_id})
            check_same_request(fingerprint_from_digest(cmd.key.method, record.refund_fingerprint), cmd.key)
            return await self._resume(record, wait_seconds)
        item = record.saga.item
        # Committed but not drawn yet (after the draw the tickets are consumed: ENTITLEMENT_CONSUMED below).
        draw = await self.entitlements.get_draw(item.raffle_id) if item and item.kind is ItemKind.RAFFLE_TICKET \
            else None
        committed = draw is not None and draw.state != "DRAWN"
        refusal = refund_refusal(record.saga, record.completed_at, self.clock.now(),
                                 self.settings.refund_window_seconds, consumed=False, raffle_committed=committed)
        if refusal:
            raise FailedPrecondition(refusal, metadata={"redemption_id": redemption_id})

        async def begin_refund(tx: Transaction) -> bool:
            if not await self.sagas.start_refund(
                    tx, record.saga, start_refund(record.saga), request_id=request_id, fingerprint=fingerprint,
                    reason=cmd.reason, owner=self.owner, now=self.clock.now(),
                    lease_seconds=self.settings.lease_seconds):
                return False
            # Locked, so a use cannot slip in between this check and the revocation.
            usages = await self.entitlements.lock_usages(tx, redemption_id)
            if blocker := refund_blocker(usages, self.clock.now()):
                raise FailedPrecondition(blocker, metadata={"redemption_id": redemption_id})
            await self.entitlements.revoke(tx, redemption_id)
            return True

        started = await self.transactions.run(begin_refund)
        if not started:  # a concurrent refund won; answer as a replay would
            return await self.refund(cmd, wait_seconds)
        await self._wait(self._start_driver(redemption_id), wait_seconds)
        return await self.get(redemption_id)

    async def _resume(self, record: SagaRecord, wait_seconds: float | None) -> SagaRecord:
        rid = record.saga.redemption_id
        if not record.saga.is_terminal and await self.sagas.acquire(rid, self.owner, self.clock.now(),
                                                                    self.settings.lease_seconds):
            await self._wait(self._start_driver(rid), wait_seconds)
        return await self.get(rid)

    # -- Recovery ----------------------------------------------------------------------------

    async def recover_once(self) -> int:
        """Claim the pending sagas nobody drives (lease lapsed) and drive them; returns how many."""
        ids = await self.sagas.claim_due(self.owner, self.clock.now(), self.settings.lease_seconds,
                                         self.settings.recovery_batch)
        if ids:
            log.info("saga_recovery", count=len(ids))
            await asyncio.gather(*(self._start_driver(rid) for rid in ids), return_exceptions=True)
        return len(ids)

    async def drivers_stopped(self) -> None:
        """Until no saga driver runs in this process (each saga terminal, handed to recovery or its lease
        lost): a test steps recovery after this instead of guessing how long a driver takes."""
        while running := [task for task in self._drivers.values() if not task.done()]:
            await asyncio.gather(*running, return_exceptions=True)

    async def refresh_metrics(self) -> dict[str, int]:
        """Set the pending-sagas gauge from a COUNT in the database (the truth across replicas/restarts)."""
        counts = await self.sagas.count_pending()
        metrics.set_pending(counts)
        return counts

    async def recovery_loop(self) -> None:
        loop = asyncio.get_running_loop()
        counted_at = float("-inf")
        while True:
            try:
                claimed = await self.recover_once()
                if not claimed or loop.time() - counted_at >= METRICS_INTERVAL_SECONDS:
                    await self.refresh_metrics()
                    counted_at = loop.time()
            except Exception:
                log.exception("saga_recovery_failed")
                claimed = 0
            if not claimed:
                await asyncio.sleep(self.settings.recovery_interval_seconds)  # production pacing when idle

    async def stop(self) -> None:
        tasks = list(self._drivers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.sagas.drain()
