"""Payouts: a creator's diamonds held at the cash rate in force, then completed or failed by payments."""

from __future__ import annotations

import uuid

from points_platform.clock import Clock
from wallet import domain
from wallet.config import WalletSettings
from wallet.domain import Currency
from wallet.use_cases.commands import CompletePayout, RequestPayout, fingerprint
from wallet.use_cases.ports import PAYOUT_PURPOSE, PayoutStore, ReserveSpec
from wallet.use_cases.results import PayoutView


class Payouts:
    def __init__(self, store: PayoutStore, clock: Clock, settings: WalletSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    async def request_payout(self, cmd: RequestPayout, caller: str) -> PayoutView:
        rate = self._settings.cash_minor_per_thousand_diamonds
        spec = ReserveSpec(
            request_id=cmd.request_id,
            fingerprint=fingerprint(cmd),
            user_id=cmd.creator_id,
            currency=Currency.DIAMONDS,
            amount=cmd.diamonds,
            reference=domain.owned_id("payout", uuid.uuid4().hex, cmd.creator_id),
            expire_time=None,  # waits for the payment system, however long it takes
            purpose=PAYOUT_PURPOSE,
        )
        return await self._store.request(
            spec,
            domain.payout_cash_minor(cmd.diamonds, rate),
            self._settings.cash_currency,
            rate,
            self._clock.now(),
        )

    async def complete_payout(self, cmd: CompletePayout, caller: str) -> PayoutView:
        return await self._store.complete(
            cmd.request_id, fingerprint(cmd), cmd.payout_id, cmd.success, cmd.failure_reason, self._clock.now()
        )
