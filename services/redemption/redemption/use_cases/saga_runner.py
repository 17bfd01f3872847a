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
from redemption.domain.item import ItemKind, ItemSnapshot
from redemption.domain.raffle import raffle_closed
from redemption.domain.saga import (
    Outcome,
    Saga,
    Step,
    after_failure,
    after_stock_lost,
    after_success,
    holds_with_reservation,
    skipped_steps,
    step_request_id,
)
from redemption.use_cases.ports import (
    Catalog,
    EntitlementRepository,
    HoldInfo,
    ItemInfo,
    PeerRefusedError,
    PeerUnavailableError,
    QuoteInfo,
    ReservationInfo,
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
        """Where a new saga starts, and the step-log rows created with it: QUOTE's reads (a Quote, and for
        limited stock the user's balance, concurrently) run before the saga is created, which then starts
        at the first step with an effect. They are reads, so nothing needs recording before them.

        Nothing for the catalog to lock (unlimited stock, no per-user limit): created at HOLD_FUNDS, priced
        by the Quote, no stock steps. Otherwise created at RESERVE_STOCK, priced, so the hold runs in the
        same round as the reservation (`_reserve_stock`). Anything else (unknown item, catalog or wallet
        unreachable, a recipient or quote refusal, a user short of funds) starts at QUOTE, whose step
        records the outcome."""
        try:
            info = await self.item_facts(saga.item_id)
            if self._recipient_refusal(saga, info.snapshot.kind):
                return saga, []
            quote, available = await self._quote_reads(saga, info)
        except (PeerRefusedError, PeerUnavailableError):
            return saga, []
        if not quote.redeemable or (available is not None and available < quote.amount):
            return saga, []
        try:
            priced = await self._priced(saga, quote)
        except (PeerRefusedError, PeerUnavailableError):
            return saga, []
        logs: list[Log] = [(Step.QUOTE, Outcome.STARTED, ""), (Step.QUOTE, Outcome.SUCCEEDED, self._quoted(quote)),
                           *self._skips(saga, priced)]
        assert priced.step is not None  # QUOTE succeeded: HOLD_FUNDS or RESERVE_STOCK is next
        return priced, [*logs, *self._round_started(priced), (priced.step, Outcome.STARTED, "")]

    async def _quote_reads(self, saga: Saga, info: ItemInfo) -> tuple[QuoteInfo, int | None]:
        """The Quote and, for limited stock, the user's available balance in the quote's currency (read
        concurrently: the currency is the item's, which a campaign does not change)."""
        quote_call = self.catalog.quote(saga.item_id, saga.user_id, saga.region, saga.quantity)
        if not info.limited_stock:
            return await quote_call, None
        quote, available = await asyncio.gather(quote_call,
                                                 self.wallet.available(saga.user_id, info.snapshot.currency))
        if quote.currency != info.snapshot.currency:  # the item changed currency since its facts were read
            available = await self.wallet.available(saga.user_id, quote.currency)
        return quote, available

    async def _priced(self, saga: Saga, quote: QuoteInfo) -> Saga:
        """The saga after its Quote: priced by it and its item as that quote saw it. A quote that locks
        nothing means no stock steps (`ItemSnapshot.reserves_stock`)."""
        info = await self.item_facts(saga.item_id, version=quote.item_version)
        item = replace(info.snapshot, reserves_stock=False) if quote.locks_nothing else info.snapshot
        return after_success(saga, Step.QUOTE, item=item, currency=quote.currency, amount=quote.amount)

    @staticmethod
    def _quoted(quote: QuoteInfo) -> str:
        return PRICED_BY_QUOTE if quote.locks_nothing else f"priced {quote.amount} {quote.currency}"

    @staticmethod
    def _round_started(saga: Saga) -> list[Log]:
        """The STARTED rows of the steps that run with the saga's next step (written with it, before them)."""
        return [(Step.HOLD_FUNDS, Outcome.STARTED, "with RESERVE_STOCK")] if holds_with_reservation(saga) else []

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
            quote, available = await self._quote_reads(saga, info)
            if not quote.redeemable:
                raise PeerRefusedError(quote.reason or "NOT_REDEEMABLE")
            # Scarce stock is not locked for a user who cannot pay: the hold still decides, but a user
            # already short fails here without keeping a unit from others.
            if available is not None and available < quote.amount:
                raise PeerRefusedError("INSUFFICIENT_FUNDS")
            priced = await self._priced(saga, quote)
        except PeerRefusedError as refused:
            return await self._fail(saga, Step.QUOTE, refused.reason)
        return await self._advance(saga, priced, [(Step.QUOTE, Outcome.SUCCEEDED, self._quoted(quote)),
                                                  *self._round_started(priced)])

    async def _reserve_stock(self, saga: Saga) -> Transition | None:
        if holds_with_reservation(saga):
            return await self._reserve_and_hold(saga)
        try:
            res = await self._reserve(saga)
        except PeerRefusedError as refused:
            return await self._fail(saga, Step.RESERVE_STOCK, refused.reason)
        reserved = self._reserved(saga, res)
        # The item may have changed since its facts were read: the entitlement follows the reserved version.
        try:
            item = await self._reserved_item(saga, res)
        except PeerRefusedError as refused:
            return await self._fail(reserved, Step.RESERVE_STOCK, refused.reason)
        return await self._succeed(reserved, Step.RESERVE_STOCK, item=item)

    async def _reserve(self, saga: Saga) -> ReservationInfo:
        return await self.catalog.reserve(
            step_request_id(saga.redemption_id, Step.RESERVE_STOCK), saga.item_id, saga.user_id,
            saga.quantity, saga.region, self.settings.reservation_ttl_seconds)

    async def _hold(self, saga: Saga) -> HoldInfo:
        return await self.wallet.reserve(
            step_request_id(saga.redemption_id, Step.HOLD_FUNDS), saga.user_id, saga.currency, saga.amount,
            self.settings.hold_ttl_seconds, saga.redemption_id)

    def _reserved(self, saga: Saga, res: ReservationInfo) -> Saga:
        return replace(saga, reservation_id=res.reservation_id, currency=res.currency, amount=res.amount,
                       reserved_at=self.clock.now())

    async def _reserved_item(self, saga: Saga, res: ReservationInfo) -> ItemSnapshot:
        info = await self.item_facts(saga.item_id, version=res.item_version)
        refusal = self._recipient_refusal(saga, info.snapshot.kind)
        if refusal:
            raise PeerRefusedError(refusal)
        return info.snapshot

    async def _reserve_and_hold(self, saga: Saga) -> Transition | None:
        """One round: the reservation and the hold of the quoted price at once, then one write with both
        outcomes. The saga was written at RESERVE_STOCK (its price set) before either call, so a crash
        replays the round under the same request ids and learns both ids again. The round is decided only
        when both calls answered: a transient failure of either retries it (the other replays), so every
        effect is known, and recorded, before compensation or the next step depends on it."""
        answers = await asyncio.gather(self._reserve(saga), self._hold(saga), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, PeerRefusedError):
                raise answer
        res, hold = answers
        done = saga
        logs: list[Log] = []
        refusal = ""
        if isinstance(res, ReservationInfo):
            done = self._reserved(done, res)
            logs.append((Step.RESERVE_STOCK, Outcome.SUCCEEDED, ""))
        elif isinstance(res, PeerRefusedError):
            refusal = res.reason
            logs.append((Step.RESERVE_STOCK, Outcome.FAILED, res.reason))
        if isinstance(hold, HoldInfo):
            done = replace(done, hold_id=hold.hold_id)
            logs.append((Step.HOLD_FUNDS, Outcome.SUCCEEDED, ""))
        elif isinstance(hold, PeerRefusedError):
            refusal = refusal or hold.reason
            logs.append((Step.HOLD_FUNDS, Outcome.FAILED, hold.reason))
        if not refusal and isinstance(res, ReservationInfo):
            if (res.currency, res.amount) != (saga.currency, saga.amount):
                # A campaign started or ended between the quote and the reservation: the hold is of
                # another price. Undone rather than re-held: the user may redeem again at the new price.
                refusal = "PRICE_CHANGED"
            else:
                try:
                    done = replace(done, item=await self._reserved_item(saga, res))
                except PeerRefusedError as refused:
                    refusal = refused.reason
        if refusal:
            # Both outcomes are on `done` (reservation_id, hold_id): compensation undoes exactly those.
            return await self._advance(saga, after_failure(done, Step.RESERVE_STOCK, refusal), logs)
        held = after_success(after_success(done, Step.RESERVE_STOCK), Step.HOLD_FUNDS)
        return await self._granted(saga, held, logs)

    async def _hold_funds(self, saga: Saga) -> Transition | None:
        if saga.amount == 0:
            held, logs = after_success(saga, Step.HOLD_FUNDS), [(Step.HOLD_FUNDS, Outcome.SKIPPED, "FREE_ITEM")]
        else:
            try:
                hold = await self._hold(saga)
            except PeerRefusedError as refused:
                return await self._fail(saga, Step.HOLD_FUNDS, refused.reason)
            held = after_success(saga, Step.HOLD_FUNDS, hold_id=hold.hold_id)
            logs = [(Step.HOLD_FUNDS, Outcome.SUCCEEDED, "")]
        return await self._granted(saga, held, logs)

    async def _granted(self, before: Saga, held: Saga, logs: list[Log]) -> Transition | None:
        """GRANT_ENTITLEMENT is local: it commits in the same statement as the hold's outcome. The state is
        still written before COMMIT_FUNDS's effect; a crash before this write replays the (idempotent) hold."""
        rows, detail = self._grant_rows(held)
        logs = [*logs, (Step.GRANT_ENTITLEMENT, Outcome.STARTED, ""),
                (Step.GRANT_ENTITLEMENT, Outcome.SUCCEEDED, detail)]
        return await self._advance(before, after_success(held, Step.GRANT_ENTITLEMENT), logs, grant=rows)

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
