"""The wallet use cases: validate a command, apply the caller's rights, run it in the store.

Credits, debits and gifts go through the group committer (one DB transaction for many
concurrent operations); holds and payouts run one transaction each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.clock import Clock
from points_platform.errors import DomainError, InvalidArgument, invalid_field
from points_platform.group_commit import GroupCommitter
from points_platform.pagination import decode_before, encode_before, page_size
from points_platform.validation import require_id, require_positive, require_request_id
from wallet import domain, metrics
from wallet.config import WalletSettings
from wallet.domain import Currency, Kind, LedgerOp, Leg
from wallet.results import BalanceView, GiftView, HoldResult, HoldView, LedgerEntryView, LedgerResult, PayoutView
from wallet.store import gift_history, holds, ledger, lots, payouts, reads, refunds
from wallet.use_cases.commands import (
    CommitHold,
    CompletePayout,
    Credit,
    Debit,
    GiftResult,
    HoldAmountCommand,
    RefundHold,
    ReleaseHold,
    RequestPayout,
    Reserve,
    SendGift,
)
from wallet.use_cases.standing import Standing

log = structlog.get_logger("wallet")

MAX_BATCH_ENTRIES = 1000


def _currency(value: int, field: str = "currency") -> Currency:
    try:
        return Currency(value)
    except ValueError:
        raise invalid_field(field, "must be POINTS, COINS or DIAMONDS") from None


def _text(field: str, value: str, max_len: int) -> str:
    if len(value) > max_len or not value.isprintable():
        raise invalid_field(field, f"must be at most {max_len} printable characters")
    return value


def _check_hold_amount(cmd: HoldAmountCommand) -> None:
    """CommitHold and RefundHold: a hold, an amount (0 = all) and a reason."""
    require_request_id(cmd.request_id)
    require_id("hold_id", cmd.hold_id)
    if not 0 <= cmd.amount <= domain.MAX_AMOUNT:
        raise invalid_field("amount", "must be 0 (all) or a positive amount")
    _text("reason", cmd.reason, 64)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _fingerprint(command: object) -> str:
    """domain.fingerprint of the command's fields (flat dataclasses: what asdict gives, without its deep copy)."""
    return domain.fingerprint({name: getattr(command, name) for name in _field_names(cast(type, type(command)))})


class Wallet:
    """The use cases, wired with the engine, the clock and the settings by the composition root."""

    def __init__(self, engine: AsyncEngine, clock: Clock, settings: WalletSettings) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        # Points expiry (off = None: the ledger batch does no lot work at all).
        self._points_ttl = (
            timedelta(days=settings.points_expiry_days) if settings.points_expiry_days > 0 else None
        )
        # Hold and payout transactions (one connection each) wait here rather than overflow the
        # pool: an overflow connection is opened and closed per use, which costs more CPU (wallet
        # and PostgreSQL) than the transaction itself.
        self._slots = asyncio.Semaphore(max(1, settings.db_pool_size))
        self.committer: GroupCommitter[LedgerOp, ledger.Outcome] = GroupCommitter(
            self._apply_ledger,
            max_batch=settings.group_commit_max_batch,
            concurrency=settings.group_commit_concurrency,
        )
        self.standing = Standing(engine, clock, self._submit, _fingerprint)

    async def _apply_ledger(self, ops: Sequence[LedgerOp]) -> list[ledger.Outcome]:
        return await ledger.apply_ledger_batch(self._engine, ops, self._clock.now(), self._points_ttl)

    async def _submit(self, op: LedgerOp) -> LedgerResult:
        result = await self.committer.submit(op)
        if isinstance(result, DomainError):
            raise result
        return result

    # --- credits and debits -----------------------------------------------------------------

    def _credit_op(self, cmd: Credit, caller: str) -> LedgerOp:
        currency = _validated_movement(cmd)
        domain.check_credit(caller, currency, cmd.reference)
        return LedgerOp(
            op="credit",
            request_id=cmd.request_id,
            fingerprint=_fingerprint(cmd),
            kind=Kind.CREDIT,
            user_id=cmd.user_id,
            legs=(
                Leg("", domain.credit_source(currency), currency, -cmd.amount),
                Leg(cmd.user_id, domain.user_account(cmd.user_id), currency, cmd.amount),
            ),
            reason=cmd.reason,
            reference=cmd.reference,
            reason_class=domain.reason_class(Kind.CREDIT, caller),
            payment_key=domain.payment_key(currency, cmd.user_id, cmd.reference),
            # Activity earnings wait for reinstatement (earning keeps them); refunds, payments and
            # adjustments are owed to the user whatever their standing.
            refused_if_suspended=cmd.user_id if caller == "earning" else "",
        )

    async def credit(self, cmd: Credit, caller: str) -> LedgerResult:
        return await self._submit(self._credit_op(cmd, caller))

    async def credit_batch(self, cmds: Sequence[Credit], caller: str) -> list[LedgerResult | DomainError]:
        """Per-entry results in order; a bad entry fails alone."""
        if len(cmds) > MAX_BATCH_ENTRIES:
            raise invalid_field("entries", f"at most {MAX_BATCH_ENTRIES} entries")
        results: list[LedgerResult | DomainError | None] = [None] * len(cmds)
        valid: list[tuple[int, LedgerOp]] = []
        for i, cmd in enumerate(cmds):
            try:
                valid.append((i, self._credit_op(cmd, caller)))
            except DomainError as exc:
                results[i] = exc
        # The entries join the group committer's queue: they share transactions with concurrent
        # calls (at most group_commit_concurrency in the database), and one failing batch falls
        # back to one transaction per entry there.
        outcomes = await self.committer.submit_many([op for _, op in valid])
        for (i, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, DomainError | LedgerResult):
                results[i] = outcome
            else:
                raise outcome
        return [r for r in results if r is not None]

    async def debit(self, cmd: Debit, caller: str) -> LedgerResult:
        currency = _validated_movement(cmd)
        domain.check_spend(currency)
        return await self._submit(
            LedgerOp(
                op="debit",
                request_id=cmd.request_id,
                fingerprint=_fingerprint(cmd),
                kind=Kind.DEBIT,
                user_id=cmd.user_id,
                legs=(
                    Leg(cmd.user_id, domain.user_account(cmd.user_id), currency, -cmd.amount),
                    Leg("", domain.spend_sink(currency), currency, cmd.amount),
                ),
                reason=cmd.reason,
                reference=cmd.reference,
                reason_class=domain.reason_class(Kind.DEBIT, caller),
            )
        )

    async def send_gift(self, cmd: SendGift, caller: str) -> GiftResult:
        require_request_id(cmd.request_id)
        require_id("sender_id", cmd.sender_id)
        require_id("creator_id", cmd.creator_id)
        require_positive("coins", cmd.coins, domain.MAX_AMOUNT)
        _text("gift_id", cmd.gift_id, 128)
        if cmd.sender_id == cmd.creator_id:
            raise InvalidArgument(
                "SELF_GIFT",
                "creator_id: a gift goes to someone else",
                field_violations=[("creator_id", "is the sender")],
            )
        rate = self._settings.gift_rate_bps
        diamonds = domain.gift_diamonds(cmd.coins, rate)
        if diamonds < 1:
            raise invalid_field("coins", "too few coins to make one diamond", "GIFT_TOO_SMALL")
        legs = [
            Leg(cmd.sender_id, domain.user_account(cmd.sender_id), Currency.COINS, -cmd.coins),
            Leg("", domain.GIFT_CONVERSION, Currency.COINS, diamonds),
            Leg("", domain.GIFT_CONVERSION, Currency.DIAMONDS, -diamonds),
            Leg(cmd.creator_id, domain.user_account(cmd.creator_id), Currency.DIAMONDS, diamonds),
        ]
        if cmd.coins > diamonds:  # the platform's share of the gift
            legs.insert(2, Leg("", domain.GIFT_REVENUE, Currency.COINS, cmd.coins - diamonds))
        result = await self._submit(
            LedgerOp(
                op="gift",
                request_id=cmd.request_id,
                fingerprint=_fingerprint(cmd),
                kind=Kind.GIFT,
                user_id=cmd.sender_id,
                legs=tuple(legs),
                reason="gift",
                reference=cmd.gift_id,
                gift_rate_bps=rate,
                reason_class=domain.reason_class(Kind.GIFT, caller),
                # A redemption's coin gift was held (and checked) when its saga reserved the coins: it completes.
                refused_if_suspended=cmd.sender_id if caller != "redemption" else "",
            )
        )
        sender, creator = result.balances
        credited = next(p.amount for p in result.transaction.postings if p.user_id == cmd.creator_id)
        return GiftResult(result, credited, sender, creator, result.gift_rate_bps)

    # --- holds ------------------------------------------------------------------------------

    async def reserve(self, cmd: Reserve, caller: str) -> HoldResult:
        require_request_id(cmd.request_id)
        require_id("user_id", cmd.user_id)
        currency = _currency(cmd.currency)
        require_positive("amount", cmd.amount, domain.MAX_AMOUNT)
        _text("reference", cmd.reference, 128)
        domain.check_spend(currency)
        ttl = domain.check_ttl(
            cmd.ttl_seconds, self._settings.hold_default_ttl_seconds, self._settings.hold_max_ttl_seconds
        )
        now = self._clock.now()
        spec = holds.ReserveSpec(
            request_id=cmd.request_id,
            fingerprint=_fingerprint(cmd),
            user_id=cmd.user_id,
            currency=currency,
            amount=cmd.amount,
            reference=cmd.reference,
            expire_time=now + timedelta(seconds=ttl),
        )
        async with self._slots:
            return await holds.reserve(self._engine, spec, now)

    async def commit_hold(self, cmd: CommitHold, caller: str) -> HoldResult:
        _check_hold_amount(cmd)
        async with self._slots:
            result = await holds.commit_hold(
                self._engine,
                cmd.request_id,
                _fingerprint(cmd),
                cmd.hold_id,
                cmd.amount,
                cmd.reason,
                self._clock.now(),
                points_lots=self._points_ttl is not None,
            )
        log.info("hold_committed", hold_id=cmd.hold_id, amount=result.hold.committed_amount)
        return result

    async def release_hold(self, cmd: ReleaseHold, caller: str) -> HoldResult:
        require_request_id(cmd.request_id)
        require_id("hold_id", cmd.hold_id)
        async with self._slots:
            return await holds.release_hold(
                self._engine, cmd.request_id, _fingerprint(cmd), cmd.hold_id, self._clock.now()
            )

    async def refund_hold(self, cmd: RefundHold, caller: str) -> HoldResult:
        _check_hold_amount(cmd)
        async with self._slots:
            result, given = await refunds.refund_hold(
                self._engine,
                cmd.request_id,
                _fingerprint(cmd),
                cmd.hold_id,
                cmd.amount,
                cmd.reason,
                self._clock.now(),
                points_ttl=self._points_ttl,
            )
        if given:  # not on a replay
            log.info("hold_refunded", hold_id=cmd.hold_id, amount=given, refunded_total=result.hold.refunded_amount)
        return result

    async def get_hold(self, hold_id: str) -> HoldView:
        require_id("hold_id", hold_id)
        return await reads.get_hold(self._engine, hold_id)

    async def sweep_expired_holds(self) -> int:
        """Release expired holds (one batch); returns how many."""
        count = await holds.sweep_expired_holds(self._engine, self._clock.now(), self._settings.sweep_batch_size)
        if count:
            log.info("holds_expired", count=count)
        return count

    async def run_sweeper(self) -> None:
        """Background job: release expired holds forever."""
        while True:
            if await self.sweep_expired_holds() < self._settings.sweep_batch_size:
                await asyncio.sleep(self._settings.sweep_interval_seconds)

    # --- points expiry ----------------------------------------------------------------------

    @property
    def points_expiry_enabled(self) -> bool:
        return self._points_ttl is not None

    async def expire_points(self) -> int:
        """Post expired lots' remainders (one batch of accounts); returns the lots posted."""
        posted = await lots.expire_lots(self._engine, self._clock.now(), self._settings.expiry_sweep_batch_size)
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

    # --- payouts ----------------------------------------------------------------------------

    async def request_payout(self, cmd: RequestPayout, caller: str) -> PayoutView:
        require_request_id(cmd.request_id)
        require_id("creator_id", cmd.creator_id)
        require_positive("diamonds", cmd.diamonds, domain.MAX_AMOUNT)
        rate = self._settings.cash_minor_per_thousand_diamonds
        spec = holds.ReserveSpec(
            request_id=cmd.request_id,
            fingerprint=_fingerprint(cmd),
            user_id=cmd.creator_id,
            currency=Currency.DIAMONDS,
            amount=cmd.diamonds,
            reference=f"payout_{uuid.uuid4().hex}",
            expire_time=None,  # waits for the payment system, however long it takes
            purpose=holds.PAYOUT_PURPOSE,
        )
        return await payouts.request_payout(
            self._engine,
            spec,
            domain.payout_cash_minor(cmd.diamonds, rate),
            self._settings.cash_currency,
            rate,
            self._clock.now(),
        )

    async def complete_payout(self, cmd: CompletePayout, caller: str) -> PayoutView:
        require_request_id(cmd.request_id)
        require_id("payout_id", cmd.payout_id)
        _text("failure_reason", cmd.failure_reason, 256)
        return await payouts.complete_payout(
            self._engine,
            cmd.request_id,
            _fingerprint(cmd),
            cmd.payout_id,
            cmd.success,
            cmd.failure_reason,
            self._clock.now(),
        )

    # --- reads ------------------------------------------------------------------------------

    async def get_balance(self, user_id: str, currency: int) -> list[BalanceView]:
        require_id("user_id", user_id)
        currencies = list(Currency) if currency == 0 else [_currency(currency)]
        return await reads.balances(self._engine, user_id, currencies)

    async def list_transactions(
        self, user_id: str, currency: int, size: int, token: str
    ) -> tuple[list[LedgerEntryView], str]:
        require_id("user_id", user_id)
        wanted = None if currency == 0 else _currency(currency)
        limit = page_size(size)
        before = decode_before(token)
        entries, more = await reads.ledger_entries(self._engine, user_id, wanted, before, limit)
        return entries, encode_before(more) if more is not None else ""

    async def list_gifts(self, user_id: str, role: int, size: int, token: str) -> tuple[list[GiftView], str]:
        """The gifts `user_id` sent (role 1, SENDER) or received (role 2, CREATOR), newest first."""
        require_id("user_id", user_id)
        if role not in (GIFT_ROLE_SENDER, GIFT_ROLE_CREATOR):
            reason = "GIFT_ROLE_REQUIRED" if role == 0 else "INVALID_FIELD"
            raise invalid_field("role", "must be SENDER or CREATOR", reason)
        limit = page_size(size)
        as_creator = role == GIFT_ROLE_CREATOR
        found, more = await gift_history.gifts(self._engine, user_id, as_creator, decode_before(token), limit)
        return found, encode_before(more) if more is not None else ""


GIFT_ROLE_SENDER, GIFT_ROLE_CREATOR = 1, 2  # points.wallet.v1.GiftRole


def _validated_movement(cmd: Credit) -> Currency:
    """Edge checks shared by Credit and Debit (a Debit is a Credit-shaped command)."""
    require_request_id(cmd.request_id)
    require_id("user_id", cmd.user_id)
    currency = _currency(cmd.currency)
    require_positive("amount", cmd.amount, domain.MAX_AMOUNT)
    _text("reason", cmd.reason, 64)
    _text("reference", cmd.reference, 128)
    return currency
