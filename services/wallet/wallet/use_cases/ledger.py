"""Credits, debits and gifts: the caller's rights, the ledger operation, and the group committer
that applies many concurrent operations in one database transaction."""

from __future__ import annotations

from collections.abc import Sequence

from points_platform.clock import Clock
from points_platform.errors import DomainError, invalid_field
from points_platform.group_commit import GroupCommitter
from wallet import domain
from wallet.config import WalletSettings
from wallet.domain import Currency, Kind, LedgerOp, Leg
from wallet.use_cases.commands import Credit, Debit, SendGift, fingerprint
from wallet.use_cases.ports import LedgerOutcome, LedgerStore
from wallet.use_cases.results import GiftResult, LedgerResult


class Ledger:
    def __init__(self, store: LedgerStore, clock: Clock, settings: WalletSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self.committer: GroupCommitter[LedgerOp, LedgerOutcome] = GroupCommitter(
            self._apply,
            max_batch=settings.group_commit_max_batch,
            concurrency=settings.group_commit_concurrency,
        )

    async def _apply(self, ops: Sequence[LedgerOp]) -> list[LedgerOutcome]:
        return await self._store.apply(ops, self._clock.now())

    async def submit(self, op: LedgerOp) -> LedgerResult:
        """One operation through the group committer: its result, or its refusal raised."""
        result = await self.committer.submit(op)
        if isinstance(result, DomainError):
            raise result
        return result

    def _credit_op(self, cmd: Credit, caller: str) -> LedgerOp:
        currency = Currency(cmd.currency)
        domain.check_credit(caller, currency, cmd.reference)
        return LedgerOp(
            op="credit",
            request_id=cmd.request_id,
            fingerprint=fingerprint(cmd),
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
        return await self.submit(self._credit_op(cmd, caller))

    async def credit_batch(self, cmds: Sequence[Credit], caller: str) -> list[LedgerResult | DomainError]:
        """Per-entry results in order; an entry the caller may not make fails alone."""
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
        currency = Currency(cmd.currency)
        domain.check_spend(currency)
        return await self.submit(
            LedgerOp(
                op="debit",
                request_id=cmd.request_id,
                fingerprint=fingerprint(cmd),
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
        result = await self.submit(
            LedgerOp(
                op="gift",
                request_id=cmd.request_id,
                fingerprint=fingerprint(cmd),
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
