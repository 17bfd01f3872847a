"""Raffle draws: the seed commitment (PrepareRaffleDraw), the draw (DrawRaffle), and what anyone replaying a
draw reads (GetRaffleDraw, ListRaffleTickets)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import structlog
from google.protobuf.message import Message

from points_platform.clock import Clock
from points_platform.errors import FailedPrecondition, NotFound, Unavailable
from points_platform.idempotency import RequestKey, find_reply, idempotent
from points_platform.unit_of_work import Transaction, Transactions
from redemption.domain.raffle import commitment_too_late, draw_winners, seed_hash
from redemption.use_cases.ports import Catalog, EntitlementRepository, ItemInfo, PeerUnavailableError
from redemption.use_cases.records import EntriesPendingError, RaffleDrawRow

log = structlog.get_logger("redemption")
R = TypeVar("R", bound=Message)


class Raffles:
    def __init__(self, transactions: Transactions, store: EntitlementRepository, catalog: Catalog,
                 clock: Clock) -> None:
        self._transactions = transactions
        self._store = store
        self._catalog = catalog
        self._clock = clock

    async def _raffle(self, raffle_id: str) -> ItemInfo:
        """The raffle's item as the catalog has it now (its draw and close times)."""
        try:
            item = await self._catalog.raffle_item(raffle_id)
        except PeerUnavailableError as exc:
            raise Unavailable("CATALOG_UNAVAILABLE", str(exc)) from None
        if item is None or item.draw_time is None:
            raise NotFound("RAFFLE_NOT_FOUND", metadata={"raffle_id": raffle_id})
        return item

    async def prepare_draw(self, key: RequestKey, raffle_id: str, reply_type: type[R],
                           answer: Callable[[RaffleDrawRow], R]) -> R:
        """Commit to a seed for the raffle (a raffle already prepared keeps its first). Idempotent by `key`:
        the reply (`answer` of the draw record) is stored with the record; the catalog is asked before the
        transaction, and not at all for a replay."""
        if (replay := await find_reply(self._transactions, key, reply_type)) is not None:
            return replay
        draw = await self._store.get_draw(raffle_id)
        if draw is None:
            draw = await self._new_draw(raffle_id)

        async def prepare(tx: Transaction) -> R:
            return answer(await self._store.prepare_draw(tx, draw))

        return await idempotent(self._transactions, key, reply_type, prepare)

    async def _new_draw(self, raffle_id: str) -> RaffleDrawRow:
        item = await self._raffle(raffle_id)
        close = item.snapshot.sales_close_time
        if commitment_too_late(close, self._clock.now()):
            raise FailedPrecondition(
                "RAFFLE_CLOSED", "the seed commitment must be published at or before the raffle's sales close",
                metadata={"raffle_id": raffle_id, "sales_close_time": close.isoformat() if close else ""})
        assert item.draw_time is not None  # _raffle refuses a raffle without one
        seed = secrets.token_bytes(32)
        return RaffleDrawRow(
            raffle_id=raffle_id, seed=seed, seed_hash=seed_hash(seed), state="PREPARED", draw_after=item.draw_time,
            winners_wanted=max(item.winners, 1), winner_entitlement_ids=[], winner_user_ids=[], ticket_count=0,
            prepare_time=self._clock.now(), draw_time=None)

    async def draw(self, key: RequestKey, raffle_id: str, reply_type: type[R],
                   answer: Callable[[RaffleDrawRow], R]) -> R:
        """Draw the raffle's winners once. Idempotent by `key` like `prepare_draw`."""
        if (replay := await find_reply(self._transactions, key, reply_type)) is not None:
            return replay
        draw = await self._store.get_draw(raffle_id)
        if draw is None:
            raise FailedPrecondition("RAFFLE_NOT_PREPARED", metadata={"raffle_id": raffle_id})
        now = self._clock.now()
        if draw.state != "DRAWN":
            if now < draw.draw_after:
                raise FailedPrecondition("DRAW_TIME_NOT_REACHED",
                                         metadata={"draw_time": draw.draw_after.isoformat()})
            # The item's close may have moved since the commitment: the draw waits for the close it has now.
            close = (await self._raffle(raffle_id)).snapshot.sales_close_time
            if close is not None and now < close:
                raise FailedPrecondition("RAFFLE_NOT_CLOSED", "ticket sales are still open",
                                         metadata={"raffle_id": raffle_id, "sales_close_time": close.isoformat()})

        async def draw_winners_once(tx: Transaction) -> R:
            try:
                drawn = await self._store.draw(tx, raffle_id, now, draw_winners)
            except EntriesPendingError as pending:
                raise FailedPrecondition(
                    "RAFFLE_ENTRIES_PENDING", "redemptions of tickets are still in flight; retry shortly",
                    metadata={"raffle_id": raffle_id, "pending_tickets": str(pending.count)}) from None
            assert drawn is not None  # the record exists (read above) and is never deleted
            log.info("raffle_drawn", raffle_id=raffle_id, tickets=drawn.ticket_count,
                     winners=len(drawn.winner_user_ids))
            return answer(drawn)

        return await idempotent(self._transactions, key, reply_type, draw_winners_once)

    async def get_draw(self, raffle_id: str) -> RaffleDrawRow:
        draw = await self._store.get_draw(raffle_id)
        if draw is None:
            raise NotFound("RAFFLE_NOT_PREPARED", metadata={"raffle_id": raffle_id})
        return draw

    async def raffle_tickets(self, raffle_id: str, limit: int,
                             after: tuple[datetime, str] | None) -> list[tuple[datetime, str]]:
        """The tickets a drawn raffle drew from, for anyone replaying the draw."""
        if (await self.get_draw(raffle_id)).state != "DRAWN":
            raise FailedPrecondition("RAFFLE_NOT_DRAWN", "the tickets are listed once the raffle is drawn",
                                     metadata={"raffle_id": raffle_id})
        return await self._store.drawn_tickets(raffle_id, limit, after)
