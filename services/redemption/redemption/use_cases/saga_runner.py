"""Drives one saga: run its current step against a peer, persist the outcome and the next step,
repeat until terminal. Never holds a transaction across a peer call."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from points_platform.clock import Clock

from redemption import metrics
from redemption.config import RedemptionSettings
from redemption.domain import (
    ENTITLEMENT_OF_ITEM,
    EntitlementKind,
    EntitlementState,
    ItemKind,
    Outcome,
    Saga,
    Step,
    after_failure,
    after_success,
    entitlement_units,
    step_request_id,
)
from redemption.peers import PeerRefused, PeerUnavailable
from redemption.store import EntitlementRow, SagaStore
from redemption.store import entitlements as entitlement_rows
from redemption.store.sagas import InTransaction
from redemption.use_cases.ports import Catalog, Wallet

log = structlog.get_logger("redemption.saga")


class SagaRunner:
    def __init__(self, sagas: SagaStore, wallet: Wallet, catalog: Catalog, clock: Clock,
                 settings: RedemptionSettings, owner: str) -> None:
        self.sagas = sagas
        self.wallet = wallet
        self.catalog = catalog
        self.clock = clock
        self.settings = settings
        self.owner = owner
        # Backpressure: at most this many steps in flight per process, so a burst of Redeem calls
        # queues here instead of flooding the peers into deadline failures.
        self._slots = asyncio.Semaphore(settings.max_concurrent_steps)

    async def drive(self, redemption_id: str) -> None:
        """Run steps until the saga is terminal, the lease is lost, or a peer stays unavailable."""
        record = await self.sagas.get(redemption_id)
        if record is None:
            return
        saga: Saga | None = record.saga
        attempts = record.attempts
        failures = 0
        while saga is not None and not saga.is_terminal and saga.step is not None:
            step = saga.step
            try:
                async with self._slots:
                    saga = await self._run(saga, step)  # None: another driver owns it now
                failures = 0
            except PeerUnavailable as exc:
                failures += 1
                handover = failures >= self.settings.inline_retries
                delay = min(self.settings.retry_base_seconds * 2 ** (failures + attempts),
                            self.settings.retry_max_seconds)
                now = self.clock.now()
                log.info("saga_step_retry", redemption_id=redemption_id, step=step.value, error=str(exc))
                metrics.step_outcome(step, metrics.TRANSIENT)
                await self.sagas.note_retry(saga, step, f"TRANSIENT: {exc}", owner=self.owner, now=now,
                                            retry_at=now + timedelta(seconds=delay), release=handover)
                if handover:
                    return
                await asyncio.sleep(delay)

    # -- persistence of one transition -------------------------------------------------------

    async def _advance(self, before: Saga, after: Saga, logs: list[tuple[Step, Outcome, str]],
                       extra: InTransaction | None = None) -> Saga | None:
        moved = await self.sagas.transition(before, after, logs, owner=self.owner, now=self.clock.now(),
                                            lease_seconds=self.settings.lease_seconds, extra=extra)
        if not moved:
            return None
        for step, outcome, _ in logs:
            metrics.step_outcome(step, outcome)
        if after.is_terminal:
            log.info("saga_finished", redemption_id=after.redemption_id, state=after.state.value,
                     reason=after.cancel_reason)
            metrics.saga_finished(after.state, after.cancel_reason)
        return after

    async def _succeed(self, saga: Saga, step: Step, detail: str = "", outcome: Outcome = Outcome.SUCCEEDED,
                       extra: InTransaction | None = None, **changes: object) -> Saga | None:
        return await self._advance(saga, after_success(saga, step, **changes), [(step, outcome, detail)], extra)

    async def _fail(self, saga: Saga, step: Step, reason: str) -> Saga | None:
        return await self._advance(saga, after_failure(saga, step, reason), [(step, Outcome.FAILED, reason)])

    # -- the steps ---------------------------------------------------------------------------

    async def _run(self, saga: Saga, step: Step) -> Saga | None:
        handler = {
            Step.QUOTE: self._quote,
            Step.RESERVE_STOCK: self._reserve_stock,
            Step.HOLD_FUNDS: self._hold_funds,
            Step.GRANT_ENTITLEMENT: self._grant,
            Step.COMMIT_FUNDS: self._commit_funds,
            Step.COMMIT_STOCK: self._commit_stock,
            Step.REVOKE_ENTITLEMENT: self._revoke,
            Step.RELEASE_FUNDS: self._release_funds,
            Step.RELEASE_STOCK: self._release_stock,
            Step.REFUND_FUNDS: self._refund_funds,
            Step.RETURN_STOCK: self._return_stock,
        }[step]
        return await handler(saga)

    async def _quote(self, saga: Saga) -> Saga | None:
        try:
            info = await self.catalog.item(saga.item_id)
            kind = info.snapshot.kind
            if kind is ItemKind.VIRTUAL_GIFT and not saga.recipient_id:
                raise PeerRefused("RECIPIENT_REQUIRED")
            if kind is not ItemKind.VIRTUAL_GIFT and saga.recipient_id:
                raise PeerRefused("RECIPIENT_NOT_ALLOWED")
            if kind is ItemKind.VIRTUAL_GIFT and saga.recipient_id == saga.user_id:
                raise PeerRefused("SELF_GIFT_NOT_ALLOWED")
            quote = await self.catalog.quote(saga.item_id, saga.user_id, saga.region, saga.quantity)
            if not quote.redeemable:
                raise PeerRefused(quote.reason or "NOT_REDEEMABLE")
            # Scarce stock is not locked for a user who cannot pay: the hold step still decides,
            # but a user already short fails here without keeping a unit from others.
            if quote.amount > 0 and await self.wallet.available(saga.user_id, quote.currency) < quote.amount:
                raise PeerRefused("INSUFFICIENT_FUNDS")
        except PeerRefused as refused:
            return await self._fail(saga, Step.QUOTE, refused.reason)
        return await self._succeed(saga, Step.QUOTE, item=info.snapshot)

    async def _reserve_stock(self, saga: Saga) -> Saga | None:
        try:
            res = await self.catalog.reserve(
                step_request_id(saga.redemption_id, Step.RESERVE_STOCK), saga.item_id, saga.user_id,
                saga.quantity, saga.region, self.settings.reservation_ttl_seconds)
        except PeerRefused as refused:
            return await self._fail(saga, Step.RESERVE_STOCK, refused.reason)
        return await self._succeed(saga, Step.RESERVE_STOCK, reservation_id=res.reservation_id,
                                   currency=res.currency, amount=res.amount, reserved_at=self.clock.now())

    async def _hold_funds(self, saga: Saga) -> Saga | None:
        if saga.amount == 0:
            return await self._succeed(saga, Step.HOLD_FUNDS, "FREE_ITEM", Outcome.SKIPPED)
        try:
            hold = await self.wallet.reserve(
                step_request_id(saga.redemption_id, Step.HOLD_FUNDS), saga.user_id, saga.currency, saga.amount,
                self.settings.hold_ttl_seconds, saga.redemption_id)
        except PeerRefused as refused:
            return await self._fail(saga, Step.HOLD_FUNDS, refused.reason)
        return await self._succeed(saga, Step.HOLD_FUNDS, hold_id=hold.hold_id)

    async def _grant(self, saga: Saga) -> Saga | None:
        assert saga.item is not None
        kind = ENTITLEMENT_OF_ITEM[saga.item.kind]
        now = self.clock.now()
        rows = [
            EntitlementRow(
                entitlement_id=uuid.uuid4().hex, user_id=saga.user_id, redemption_id=saga.redemption_id, unit=unit,
                kind=kind, item_id=saga.item_id, state=EntitlementState.ACTIVE,
                discount_code=secrets.token_urlsafe(16) if kind is EntitlementKind.DISCOUNT_CODE else None,
                raffle_id=saga.item.raffle_id, event_id=saga.item.event_id, recipient_id=saga.recipient_id,
                cosmetic_id=saga.item.cosmetic_id, gift_id=saga.item.gift_id, create_time=now,
            )
            for unit in range(entitlement_units(kind, saga.quantity))
        ]

        async def insert(conn: AsyncConnection) -> None:
            await entitlement_rows.grant(conn, rows)

        return await self._succeed(saga, Step.GRANT_ENTITLEMENT, f"{len(rows)} {kind.value}", extra=insert)

    async def _commit_funds(self, saga: Saga) -> Saga | None:
        rid = saga.redemption_id
        try:
            if saga.reserved_at is not None and (self.clock.now() - saga.reserved_at).total_seconds() > \
                    self.settings.reservation_recheck_seconds:
                # The stock must outlive the point of no return: re-read an old reservation first.
                res = await self.catalog.reservation(saga.reservation_id)
                if res.state != "ACTIVE":
                    raise PeerRefused(f"RESERVATION_{res.state}")
            if not saga.hold_id:
                return await self._succeed(saga, Step.COMMIT_FUNDS, "FREE_ITEM", Outcome.SKIPPED)
            if saga.pays_gift_in_coins:
                # Coin gift: the hold guaranteed the coins; SendGift spends them and credits the creator's
                # diamonds at the gift rate in one wallet transaction. Release first so the coins are available.
                hold = await self._release_hold(saga)
                if hold == "EXPIRED":
                    raise PeerRefused("HOLD_EXPIRED")
                assert saga.item is not None
                await self.wallet.send_gift(step_request_id(rid, Step.SEND_GIFT), saga.user_id, saga.recipient_id,
                                            saga.amount, saga.item.gift_id or saga.item_id)
                return await self._succeed(saga, Step.COMMIT_FUNDS, "SENT_AS_COIN_GIFT")
            await self.wallet.commit(step_request_id(rid, Step.COMMIT_FUNDS), saga.hold_id, "redemption")
        except PeerRefused as refused:
            return await self._fail(saga, Step.COMMIT_FUNDS, refused.reason)
        return await self._succeed(saga, Step.COMMIT_FUNDS)

    async def _commit_stock(self, saga: Saga) -> Saga | None:
        reservation_id = saga.reservation_id
        if not reservation_id:
            # The reservation lapsed after the funds were committed: reserve again under a new id.
            try:
                res = await self.catalog.reserve(
                    step_request_id(saga.redemption_id, Step.RESERVE_STOCK, saga.stock_attempt), saga.item_id,
                    saga.user_id, saga.quantity, saga.region, self.settings.reservation_ttl_seconds)
            except PeerRefused as refused:
                log.error("saga_stock_lost", redemption_id=saga.redemption_id, reason=refused.reason)
                return await self._succeed(saga, Step.COMMIT_STOCK, f"STOCK_NOT_COMMITTED: {refused.reason}",
                                           Outcome.FAILED)
            reservation_id = res.reservation_id
        try:
            await self.catalog.commit(step_request_id(saga.redemption_id, Step.COMMIT_STOCK, saga.stock_attempt),
                                      reservation_id)
        except PeerRefused as refused:
            return await self._fail(saga, Step.COMMIT_STOCK, refused.reason)
        return await self._succeed(saga, Step.COMMIT_STOCK, reservation_id=reservation_id)

    async def _revoke(self, saga: Saga) -> Saga | None:
        async def revoke(conn: AsyncConnection) -> None:
            await entitlement_rows.revoke(conn, saga.redemption_id)

        return await self._succeed(saga, Step.REVOKE_ENTITLEMENT, extra=revoke)

    async def _release_hold(self, saga: Saga) -> str:
        """Release the saga's hold; returns its final state. An already expired hold counts as released."""
        try:
            hold = await self.wallet.release(step_request_id(saga.redemption_id, Step.RELEASE_FUNDS), saga.hold_id)
            return hold.state
        except PeerRefused:
            state = (await self.wallet.hold(saga.hold_id)).state
            if state == "ACTIVE":
                raise PeerUnavailable("hold refused release but is still active") from None
            return state

    async def _release_funds(self, saga: Saga) -> Saga | None:
        state = await self._release_hold(saga)
        return await self._succeed(saga, Step.RELEASE_FUNDS, state)

    async def _release_stock(self, saga: Saga) -> Saga | None:
        try:
            res = await self.catalog.release(step_request_id(saga.redemption_id, Step.RELEASE_STOCK),
                                             saga.reservation_id)
            state = res.state
        except PeerRefused:
            state = (await self.catalog.reservation(saga.reservation_id)).state
            if state == "ACTIVE":
                raise PeerUnavailable("reservation refused release but is still active") from None
        return await self._succeed(saga, Step.RELEASE_STOCK, state)

    async def _refund_funds(self, saga: Saga) -> Saga | None:
        if saga.amount == 0:
            return await self._succeed(saga, Step.REFUND_FUNDS, "FREE_ITEM", Outcome.SKIPPED)
        try:
            await self.wallet.credit(step_request_id(saga.redemption_id, Step.REFUND_FUNDS), saga.user_id,
                                     saga.currency, saga.amount, "refund", saga.redemption_id)
        except PeerRefused as refused:
            # A refund cannot be abandoned once the entitlement is revoked: keep retrying, loudly.
            log.error("refund_credit_refused", redemption_id=saga.redemption_id, reason=refused.reason)
            raise PeerUnavailable(f"credit refused: {refused.reason}") from None
        return await self._succeed(saga, Step.REFUND_FUNDS)

    async def _return_stock(self, saga: Saga) -> Saga | None:
        if not saga.reservation_id:
            # COMMIT_STOCK found the stock gone after the funds commit (saga_stock_lost): nothing was sold.
            return await self._succeed(saga, Step.RETURN_STOCK, "STOCK_NOT_COMMITTED", Outcome.SKIPPED)
        try:
            res = await self.catalog.return_stock(step_request_id(saga.redemption_id, Step.RETURN_STOCK),
                                                  saga.reservation_id, saga.quantity)
        except PeerRefused as refused:
            # RESERVATION_NOT_COMMITTED / RETURN_EXCEEDS_SOLD: no sold unit of this saga is left to return,
            # and retrying cannot change that; the funds are back already, so the refund still finishes.
            log.error("refund_stock_not_returned", redemption_id=saga.redemption_id, reason=refused.reason)
            return await self._succeed(saga, Step.RETURN_STOCK, refused.reason, Outcome.FAILED)
        return await self._succeed(saga, Step.RETURN_STOCK, f"RETURNED {saga.quantity} (total {res.returned_quantity})")
