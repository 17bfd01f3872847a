"""Reads of one user's money: balances, ledger history, gifts sent or received."""

from __future__ import annotations

from collections.abc import Sequence

from wallet.domain import Currency
from wallet.use_cases.ports import HistoryStore
from wallet.use_cases.results import BalanceView, GiftView, LedgerEntryView


class History:
    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    async def get_balance(self, user_id: str, currencies: Sequence[Currency]) -> list[BalanceView]:
        return await self._store.balances(user_id, currencies)

    async def list_transactions(
        self, user_id: str, currency: Currency | None, limit: int, before: int | None
    ) -> tuple[list[LedgerEntryView], int | None]:
        """Newest first, and the posting id the next page starts before (None = last page)."""
        return await self._store.ledger_entries(user_id, currency, before, limit)

    async def list_gifts(
        self, user_id: str, as_creator: bool, limit: int, before: int | None
    ) -> tuple[list[GiftView], int | None]:
        """The gifts `user_id` received (as_creator) or sent, newest first."""
        return await self._store.gifts(user_id, as_creator, before, limit)
