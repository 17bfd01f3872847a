"""Drives one saga: run its current step against a peer, persist the outcome and the next step,
repeat until terminal. Never holds a transaction across a peer call."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from points_platform.clock import Clock
from points_platform.unit_of_work import Transaction, Transactions
from redemption import metrics
from redemption.config import RedemptionSettings
from redemption.domain.entitlements import (
    ENTITLEMENT_OF_ITEM,
    EntitlementKind,
    EntitlementState,
    entitlement_units,
    expiry,
    granted_uses,
)
from redemption.domain.item import ItemKind
from redemption.domain.raffle import raffle_closed
from redemption.domain.saga import (
    Outcome,
    Saga,
    Step,
    after_failure,
    after_stock_lost,
    after_success,
    skipped_steps,
    step_request_id,
)
from redemption.use_cases.ports import (
    Catalog,
    EntitlementRepository,
    ItemInfo,
    PeerRefusedError,
    PeerUnavailableError,
    QuoteInfo,
    SagaRepository,
    Wallet,
)
from redemption.use_cases.records import EntitlementRow, Log, Transition

log = structlog.get_logger("redemption.saga")
# Step-log details of a saga whose item has nothing for the catalog to lock (unlimited stock, no per-user limit).
PRICED_BY_QUOTE = "priced by Quote: unlimited stock, no per-user limit"
NOTHING_TO_LOCK = "NOTHING_TO_LOCK"
# Item facts (kind, attribute ids, limited stock) are reused this long by the service clock; a
# reservation naming another item version refreshes them at once.
ITEM_FACTS_TTL = timedelta(seconds=5)


class SagaRunner:
    def __init__(self, transactions: Transactions, sagas: SagaRepository, entitlements: EntitlementRepository,
                 wallet: Wallet, catalog: Catalog, clock: Clock, settings: RedemptionSettings, owner: str) -> None:
        self.transactions = transactions
        self.sagas = sagas
        self.entitlements = entitlements
        self.wallet = wallet
        self.catalog = catalog
        self.clock = clock
        self.settings = settings
        self.owner = owner
        # Backpressure: at most this many steps in flight per process, so a burst of Redeem calls
        # queues here instead of flooding the peers into deadline failures.
        self._slots = asyncio.Semaphore(settings.max_concurrent_steps)
        self._items: dict[str, tuple[datetime, ItemInfo]] = {}

    # -- item facts ----------------------------------------------------------------------------

    async def item_facts(self, item_id: str, *, version: int = 0) -> ItemInfo:
        """The item from a short cache; `version` (from a reservation) forces a re-read when it differs."""
        cached = self._items.get(item_id)
        now = self.clock.now()
        # A clock set back (tests move it both ways) makes an entry stale, not fresh for longer.
        fresh = cached is not None and timedelta(0) <= now - cached[0] < ITEM_FACTS_TTL
        if cached is not None and fresh and version in (0, cached[1].version):
            return cached[1]
        info = await self.catalog.item(item_id)
        self._items[item_id] = (now, info)
        return info

    @staticmethod
    def _recipient_refusal(saga: Saga, kind: ItemKind) -> str:
        if kind is ItemKind.VIRTUAL_GIFT and not saga.recipient_id:
            return "RECIPIENT_REQUIRED"
        if kind is not ItemKind.VIRTUAL_GIFT and saga.recipient_id:
            return "RECIPIENT_NOT_ALLOWED"
        if kind is ItemKind.VIRTUAL_GIFT and saga.recipient_id == saga.user_id:
            return "SELF_GIFT_NOT_ALLOWED"
        return ""

    async def opening(self, saga: Saga) -> tuple[Saga, list[Log]]:
        """Where a new saga starts, and the step-log rows created with it.

        An unlimited-stock item whose facts are known skips QUOTE's peer calls: with no scarce unit at stake the
        funds pre-check buys nothing (HOLD_FUNDS still decides). Without a per-user limit either, the catalog has
        nothing to lock: one Quote prices the saga, which is created at HOLD_FUNDS and never touches stock
        (RESERVE_STOCK and COMMIT_STOCK skipped). With a per-user limit it starts at RESERVE_STOCK, which checks
        region, window and the limit atomically and prices the reservation. Either way the row is written at
        the step before its effect. Everything else (limited stock, unknown item, catalog unreachable, a
        recipient refusal, a quote refusing) starts at QUOTE, which records the outcome."""
        try:
            info = await self.item_facts(saga.item_id)
            if info.limited_stock or self._recipient_refusal(saga, info.snapshot.kind):
                return saga, []
            if info.per_user_limit > 0:
                logs = [(Step.QUOTE, Outcome.STARTED, ""),
                        (Step.QUOTE, Outcome.SUCCEEDED, "unlimited stock: ReserveStock checks and prices"),
                        (Step.RESERVE_STOCK, Outcome.STARTED, "")]
                return after_success(saga, Step.QUOTE, item=info.snapshot), logs
            quote = await self.catalog.quote(saga.item_id, saga.user_id, saga.region, saga.quantity)
            if not quote.redeemable or not quote.locks_nothing:
                return saga, []
            priced = await self._priced(saga, quote)
        except (PeerRefusedError, PeerUnavailableError):
            return saga, []
        logs = [(Step.QUOTE, Outcome.STARTED, ""), (Step.QUOTE, Outcome.SUCCEEDED, PRICED_BY_QUOTE),
                *self._skips(saga, priced), (Step.HOLD_FUNDS, Outcome.STARTED, "")]
        return priced, logs

    async def _priced(self, saga: Saga, quote: QuoteInfo) -> Saga:
        """The saga after a Quote that locks nothing: priced by it, its item as that quote saw it, no stock steps."""
        info = await self.item_facts(saga.item_id, version=quote.item_version)
        return after_success(saga, Step.QUOTE, item=replace(info.snapshot, reserves_stock=False),
                             currency=quote.currency, amount=quote.amount)

    @staticmethod
    def _skips(before: Saga, after: Saga) -> list[Log]:
        return [(step, Outcome.SKIPPED, NOTHING_TO_LOCK) for step in skipped_steps(before, after)]

    @staticmethod
    def opened(logs: list[Log]) -> None:
        """Count the step outcomes a saga was created with (after its row committed)."""
        for step, outcome, _ in logs:
            if outcome is not Outcome.STARTED:
                metrics.step_outcome(step, outcome)

    # -- driving ---------------------------------------------------------------------------------

    async def drive(self, redemption_id: str, saga: Saga | None = None) -> tuple[Transition, ...] | None:
        """Run steps until the saga is terminal, the lease is lost, or a peer stays unavailable.
        `saga`: its state as just written by this process (skips the read). Returns the transitions it wrote
        when they are every write to the saga since then (Redeem answers from them without reading the saga
        back); None when another write happened (a retry noted, the lease lost)."""
        attempts = 0
        if saga is None:
            record = await self.sagas.get(redemption_id)
            if record is None:
                return None
            saga, attempts = record.saga, record.attempts
        written: list[Transition] = []
        failures = 0
        retried = False  # a noted retry writes the saga too (its log row, its attempt count): not in `written`
        while not saga.is_terminal and saga.step is not None:
            step = saga.step
            try:
                async with self._slots:
                    moved = await self._run(saga, step)
            except PeerUnavailableError as exc:
                failures += 1
                retried = True
                handover = failures >= self.settings.inline_retries
                delay = min(self.settings.retry_base_seconds * 2 ** (failures + attempts),
                            self.settings.retry_max_seconds)
                now = self.clock.now()
                log.info("saga_step_retry", redemption_id=redemption_id, step=step.value, error=str(exc))
                metrics.step_outcome(step, metrics.TRANSIENT)
                await self.sagas.note_retry(saga, step, f"TRANSIENT: {exc}", owner=self.owner, now=now,
                                            retry_at=now + timedelta(seconds=delay), release=handover)
                if handover:
                    return None
                await asyncio.sleep(delay)  # production backoff between inline retries; tests step handed-over sagas
                continue
            if moved is None:  # another driver owns it now
                return None
            failures = 0
            written.append(moved)
            saga = moved.after
        return None if retried else tuple(written)

    # -- persistence of one transition -------------------------------------------------------

    async def _advance(self, before: Saga, after: Saga, logs: list[Log], tx: Transaction | None = None,
                       grant: Sequence[EntitlementRow] = ()) -> Transition | None:
        """Write the transition; it is returned if it moved the saga (None: another driver owns the saga)."""
        logs = [*logs, *self._skips(before, after)]
        move = Transition.of(before, after, logs, self.clock.now(), grant)
        if not await self.sagas.transition(move, owner=self.owner, lease_seconds=self.settings.lease_seconds, tx=tx):
            return None
        self.opened(logs)
        if after.is_terminal:
            log.info("saga_finished", redemption_id=after.redemption_id, state=after.state.value,
                     reason=after.cancel_reason)
            metrics.saga_finished(after.state, after.cancel_reason)
        return move

    async def _succeed(self, saga: Saga, step: Step, detail: str = "", outcome: Outcome = Outcome.SUCCEEDED,
                       tx: Transaction | None = None, **changes: object) -> Transition | None:
        return await self._advance(saga, after_success(saga, step, **changes), [(step, outcome, detail)], tx)

    async def _fail(self, saga: Saga, step: Step, reason: str) -> Transition | None:
        return await self._advance(saga, after_failure(saga, step, reason), [(step, Outcome.FAILED, reason)])

    # -- the steps ---------------------------------------------------------------------------

    async def _run(self, saga: Saga, step: Step) -> Transition | None:
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

    async def _quote(self, saga: Saga) -> Transition | None:
        try:
            info = await self.item_facts(saga.item_id)
            refusal = self._recipient_refusal(saga, info.snapshot.kind)
            if refusal:
                raise PeerRefusedError(refusal)
            quote = await self.catalog.quote(saga.item_id, saga.user_id, saga.region, saga.quantity)
            if not quote.redeemable:
                raise PeerRefusedError(quote.reason or "NOT_REDEEMABLE")
            if quote.locks_nothing:
                # Nothing scarce to protect: no pre-check, no stock steps (see `opening`).
                return await self._advance(saga, await self._priced(saga, quote),
                                           [(Step.QUOTE, Outcome.SUCCEEDED, PRICED_BY_QUOTE)])
            # Scarce stock is not locked for a user who cannot pay: the hold step still decides,
            # but a user already short fails here without keeping a unit from others.
            if quote.amount > 0 and await self.wallet.available(saga.user_id, quote.currency) < quote.amount:
                raise PeerRefusedError("INSUFFICIENT_FUNDS")
        except PeerRefusedError as refused:
            return await self._fail(saga, Step.QUOTE, refused.reason)
        return await self._succeed(saga, Step.QUOTE, item=info.snapshot)

    async def _reserve_stock(self, saga: Saga) -> Transition | None:
        try:
            res = await self.catalog.reserve(
                step_request_id(saga.redemption_id, Step.RESERVE_STOCK), saga.item_id, saga.user_id,
                saga.quantity, saga.region, self.settings.reservation_ttl_seconds)
        except PeerRefusedError as refused:
            return await self._fail(saga, Step.RESERVE_STOCK, refused.reason)
        reserved = replace(saga, reservation_id=res.reservation_id, currency=res.currency, amount=res.amount,
                           reserved_at=self.clock.now())
        # The item may have changed since its facts were read: the entitlement follows the reserved version.
        try:
            info = await self.item_facts(saga.item_id, version=res.item_version)
            refusal = self._recipient_refusal(saga, info.snapshot.kind)
            if refusal:
                raise PeerRefusedError(refusal)
        except PeerRefusedError as refused:
            return await self._fail(reserved, Step.RESERVE_STOCK, refused.reason)
        return await self._succeed(reserved, Step.RESERVE_STOCK, item=info.snapshot)

    async def _hold_funds(self, saga: Saga) -> Transition | None:
        if saga.amount == 0:
            held, logs = after_success(saga, Step.HOLD_FUNDS), [(Step.HOLD_FUNDS, Outcome.SKIPPED, "FREE_ITEM")]
        else:
            try:
                hold = await self.wallet.reserve(
                    step_request_id(saga.redemption_id, Step.HOLD_FUNDS), saga.user_id, saga.currency, saga.amount,
                    self.settings.hold_ttl_seconds, saga.redemption_id)
            except PeerRefusedError as refused:
                return await self._fail(saga, Step.HOLD_FUNDS, refused.reason)
            held = after_success(saga, Step.HOLD_FUNDS, hold_id=hold.hold_id)
            logs = [(Step.HOLD_FUNDS, Outcome.SUCCEEDED, "")]
        # GRANT_ENTITLEMENT is local: it commits in the same statement as the hold's outcome. The state is
        # still written before COMMIT_FUNDS's effect; a crash before this write replays the (idempotent) hold.
        rows, detail = self._grant_rows(held)
        logs += [(Step.GRANT_ENTITLEMENT, Outcome.STARTED, ""), (Step.GRANT_ENTITLEMENT, Outcome.SUCCEEDED, detail)]
        return await self._advance(saga, after_success(held, Step.GRANT_ENTITLEMENT), logs, grant=rows)

    async def _grant(self, saga: Saga) -> Transition | None:
        """Only for sagas persisted at GRANT_ENTITLEMENT (HOLD_FUNDS normally grants in its own write)."""
        rows, detail = self._grant_rows(saga)
        return await self._advance(saga, after_success(saga, Step.GRANT_ENTITLEMENT),
                                   [(Step.GRANT_ENTITLEMENT, Outcome.SUCCEEDED, detail)], grant=rows)

    def _grant_rows(self, saga: Saga) -> tuple[list[EntitlementRow], str]:
        assert saga.item is not None
        kind = ENTITLEMENT_OF_ITEM[saga.item.kind]
        now = self.clock.now()
        max_uses, unlimited_uses = granted_uses(saga.item, kind)
        rows = [
            EntitlementRow(
                entitlement_id=uuid.uuid4().hex, user_id=saga.user_id, redemption_id=saga.redemption_id, unit=unit,
                kind=kind, item_id=saga.item_id, state=EntitlementState.ACTIVE,
                discount_code=secrets.token_urlsafe(16) if kind is EntitlementKind.DISCOUNT_CODE else None,
                raffle_id=saga.item.raffle_id, event_id=saga.item.event_id, recipient_id=saga.recipient_id,
                cosmetic_id=saga.item.cosmetic_id, gift_id=saga.item.gift_id, create_time=now,
                max_uses=max_uses, unlimited_uses=unlimited_uses, use_count=0, expire_time=expiry(saga.item, now),
            )
            for unit in range(entitlement_units(kind, saga.quantity))
        ]
        return rows, f"{len(rows)} {kind.value}"

    async def _sales_over(self, saga: Saga) -> bool:
        """A raffle ticket whose raffle closed or was drawn is not sold: its entries are final."""
        item = saga.item
        if item is None or item.kind is not ItemKind.RAFFLE_TICKET:
            return False
        return raffle_closed(item, self.clock.now()) or await self.entitlements.is_drawn(item.raffle_id,
                                                                                         wait_for_draw=True)

    async def _commit_funds(self, saga: Saga) -> Transition | None:
        rid = saga.redemption_id
        try:
            if await self._sales_over(saga) and (
                    not saga.hold_id or (await self.wallet.hold(saga.hold_id)).state != "COMMITTED"):
                # Reserved before the close, paid after it: not sold. Unless the hold is committed already
                # (the commit landed, the process died before recording it): that is replayed forward, as
                # below, and the draw waits for this saga (its ticket is active and its saga pending).
                raise PeerRefusedError("RAFFLE_CLOSED")
            if saga.reserved_at is not None and (self.clock.now() - saga.reserved_at).total_seconds() > \
                    self.settings.reservation_recheck_seconds:
                # The stock must outlive the point of no return: re-read an old reservation first.
                res = await self.catalog.reservation(saga.reservation_id)
                # Only while the hold is still ACTIVE is the commit undecided: a crash after CommitHold (or
                # the coin path's release) took effect must be replayed forward, never cancelled.
                if res.state != "ACTIVE" and (
                        not saga.hold_id or (await self.wallet.hold(saga.hold_id)).state == "ACTIVE"):
                    raise PeerRefusedError(f"RESERVATION_{res.state}")
            if not saga.hold_id:
                return await self._succeed(saga, Step.COMMIT_FUNDS, "FREE_ITEM", Outcome.SKIPPED)
            if saga.pays_gift_in_coins:
                # Coin gift: the hold guaranteed the coins; SendGift spends them and credits the creator's
                # diamonds at the gift rate in one wallet transaction. Release first so the coins are available.
                hold = await self._release_hold(saga)
                if hold == "EXPIRED":
                    raise PeerRefusedError("HOLD_EXPIRED")
                assert saga.item is not None
                await self.wallet.send_gift(step_request_id(rid, Step.SEND_GIFT), saga.user_id, saga.recipient_id,
                                            saga.amount, saga.item.gift_id or saga.item_id)
                return await self._succeed(saga, Step.COMMIT_FUNDS, "SENT_AS_COIN_GIFT")
            await self.wallet.commit(step_request_id(rid, Step.COMMIT_FUNDS), saga.hold_id, "redemption")
        except PeerRefusedError as refused:
            return await self._fail(saga, Step.COMMIT_FUNDS, refused.reason)
        return await self._succeed(saga, Step.COMMIT_FUNDS)

    async def _commit_stock(self, saga: Saga) -> Transition | None:
        reservation_id = saga.reservation_id
        if not reservation_id:
            # The reservation lapsed after the funds were committed: reserve again under a new id.
            try:
                res = await self.catalog.reserve(
                    step_request_id(saga.redemption_id, Step.RESERVE_STOCK, saga.stock_attempt), saga.item_id,
                    saga.user_id, saga.quantity, saga.region, self.settings.reservation_ttl_seconds)
            except PeerRefusedError as refused:
                log.error("saga_stock_lost", redemption_id=saga.redemption_id, reason=refused.reason)
                lost = (Step.COMMIT_STOCK, Outcome.FAILED, f"STOCK_NOT_COMMITTED: {refused.reason}")
                return await self._advance(saga, after_stock_lost(saga, refused.reason), [lost])
            reservation_id = res.reservation_id
        try:
            await self.catalog.commit(step_request_id(saga.redemption_id, Step.COMMIT_STOCK, saga.stock_attempt),
                                      reservation_id)
        except PeerRefusedError as refused:
            return await self._fail(saga, Step.COMMIT_STOCK, refused.reason)
        return await self._succeed(saga, Step.COMMIT_STOCK, reservation_id=reservation_id)

    async def _revoke(self, saga: Saga) -> Transition | None:
        async with self.transactions.begin() as tx:  # the step and the revocation commit together
            after = await self._succeed(saga, Step.REVOKE_ENTITLEMENT, tx=tx)
            if after is not None:
                await self.entitlements.revoke(tx, saga.redemption_id)
        return after

    async def _release_hold(self, saga: Saga) -> str:
        """Release the saga's hold; returns its final state. An already expired hold counts as released."""
        try:
            hold = await self.wallet.release(step_request_id(saga.redemption_id, Step.RELEASE_FUNDS), saga.hold_id)
            return hold.state
        except PeerRefusedError:
            state = (await self.wallet.hold(saga.hold_id)).state
            if state == "ACTIVE":
                raise PeerUnavailableError("hold refused release but is still active") from None
            return state

    async def _give_back(self, saga: Saga, request_id: str) -> None:
        """Return the saga's committed funds to the user. COINS: the wallet refunds the committed hold
        (only payments may credit COINS). POINTS: a refund credit, as before RefundHold existed, so a
        refund in flight across an upgrade replays under its original request id."""
        if saga.currency == "COINS":
            await self.wallet.refund_hold(request_id, saga.hold_id, saga.amount, "refund")
        else:
            await self.wallet.credit(request_id, saga.user_id, saga.currency, saga.amount, "refund", saga.redemption_id)

    async def _release_funds(self, saga: Saga) -> Transition | None:
        state = await self._release_hold(saga)
        if state == "COMMITTED":
            # Another driver (one that outlived its lease) committed the hold after this saga
            # chose to compensate: the spent funds are credited back, so a CANCELLED saga never
            # keeps the user's money.
            try:
                await self._give_back(saga, f"{step_request_id(saga.redemption_id, Step.RELEASE_FUNDS)}-restore")
                state = "COMMITTED_RESTORED"
            except PeerRefusedError as refused:
                log.error("committed_funds_not_restored", redemption_id=saga.redemption_id, reason=refused.reason)
                state = f"COMMITTED_NOT_RESTORED:{refused.reason}"
        return await self._succeed(saga, Step.RELEASE_FUNDS, state)

    async def _release_stock(self, saga: Saga) -> Transition | None:
        try:
            res = await self.catalog.release(step_request_id(saga.redemption_id, Step.RELEASE_STOCK),
                                             saga.reservation_id)
            state = res.state
        except PeerRefusedError:
            state = (await self.catalog.reservation(saga.reservation_id)).state
            if state == "ACTIVE":
                raise PeerUnavailableError("reservation refused release but is still active") from None
        return await self._succeed(saga, Step.RELEASE_STOCK, state)

    async def _refund_funds(self, saga: Saga) -> Transition | None:
        if saga.amount == 0:
            return await self._succeed(saga, Step.REFUND_FUNDS, "FREE_ITEM", Outcome.SKIPPED)
        try:
            await self._give_back(saga, step_request_id(saga.redemption_id, Step.REFUND_FUNDS))
        except PeerRefusedError as refused:
            # A refund cannot be abandoned once the entitlement is revoked: keep retrying, loudly.
            log.error("refund_credit_refused", redemption_id=saga.redemption_id, reason=refused.reason)
            raise PeerUnavailableError(f"credit refused: {refused.reason}") from None
        return await self._succeed(saga, Step.REFUND_FUNDS)

    async def _return_stock(self, saga: Saga) -> Transition | None:
        if not saga.reservation_id:
            # COMMIT_STOCK found the stock gone after the funds commit (saga_stock_lost): nothing was sold.
            # (A points saga is refunded right then; a coin saga completed without stock.)
            return await self._succeed(saga, Step.RETURN_STOCK, "STOCK_NOT_COMMITTED", Outcome.SKIPPED)
        try:
            res = await self.catalog.return_stock(step_request_id(saga.redemption_id, Step.RETURN_STOCK),
                                                  saga.reservation_id, saga.quantity)
        except PeerRefusedError as refused:
            # RESERVATION_NOT_COMMITTED / RETURN_EXCEEDS_SOLD: no sold unit of this saga is left to return,
            # and retrying cannot change that; the funds are back already, so the refund still finishes.
            log.error("refund_stock_not_returned", redemption_id=saga.redemption_id, reason=refused.reason)
            return await self._succeed(saga, Step.RETURN_STOCK, refused.reason, Outcome.FAILED)
        return await self._succeed(saga, Step.RETURN_STOCK, f"RETURNED {saga.quantity} (total {res.returned_quantity})")
