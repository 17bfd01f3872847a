"""Reservation use cases: reserve stock, commit or release it, return units, expire the due ones.

ReserveStock, CommitReservation and ReleaseReservation have a hot path (`reserve_fast`,
`commit_fast`, `release_fast`): one statement chaining the effect, the request's key and its
reply. When it does not apply (a guard failed, the key is taken, a per-user limit) it answers
None and the transport runs the general path in a unit of work under the platform's idempotency
rules, which decides, reports the exact reason, or replays.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from catalog import domain
from catalog.domain import Item, Reservation, ReservationState, StockReturn
from catalog.use_cases.commands import ReserveStock, ResolveReservation, ReturnStock
from catalog.use_cases.ids import derived_id
from catalog.use_cases.items import item_not_found
from catalog.use_cases.ports import Database, ItemReads, Repositories, ReservationReply, UnitOfWork
from points_platform.clock import Clock
from points_platform.errors import FailedPrecondition, NotFound

log = structlog.get_logger("catalog")


def _log_resolved(r: Reservation, target: ReservationState) -> None:
    log.info("reservation_" + ("committed" if target == ReservationState.COMMITTED else "released"),
             reservation_id=r.reservation_id)


def _unavailable(reason: domain.Unavailable, item_id: str) -> FailedPrecondition:
    # OUT_OF_STOCK included: FAILED_PRECONDITION for every domain refusal (see docs/catalog.md).
    return FailedPrecondition(reason.value, metadata={"item_id": item_id})


class Reservations:
    def __init__(
        self, db: Database, clock: Clock, reply: ReservationReply, *, default_ttl_seconds: int,
        stock_low_threshold: int, sweep_batch: int = 500,
    ) -> None:
        self._db = db
        self._clock = clock
        self._reply = reply
        self._default_ttl = default_ttl_seconds
        self._low_threshold = stock_low_threshold
        self._sweep_batch = sweep_batch

    def _new_reservation(self, cmd: ReserveStock, item: Item, priced: domain.PricedUnit, now: datetime) -> Reservation:
        ttl = cmd.ttl_seconds or self._default_ttl
        unit = priced.unit_price
        return Reservation(
            reservation_id=derived_id("rsv", f"{cmd.user_id}\x00{cmd.request_id}"),  # request ids are unique per user
            item_id=item.item_id,
            item_version=item.version,
            user_id=cmd.user_id,
            region=cmd.region,
            quantity=cmd.quantity,
            unit_price=unit,
            total_price=domain.Price(unit.currency, unit.amount * cmd.quantity),
            campaign_id=priced.campaign_id,
            state=ReservationState.ACTIVE,
            expire_time=now + timedelta(seconds=ttl),
            create_time=now,
            resolve_time=None,
            took_stock=item.spec.limited_stock,
        )

    async def _planned(
        self, cmd: ReserveStock, reads: ItemReads, item: Item, campaign_links: int, now: datetime
    ) -> Reservation:
        """The reservation both paths write, from the same reads: an item-level reason refuses it,
        the best price among the campaigns linked to the item applies (stock and the per-user
        limit are each path's own: a guarded statement, or a lock and a count)."""
        reason = domain.unavailable_reason(item, cmd.region, now)
        if reason is not None:
            raise _unavailable(reason, item.item_id)
        campaigns = await reads.campaigns(item.item_id, campaign_links)
        return self._new_reservation(cmd, item, domain.resolve_price(item, campaigns, cmd.region, now), now)

    async def reserve_fast(self, cmd: ReserveStock) -> Reservation | None:
        """Items without a per-user limit: one read, then one statement (key + reply + stock + insert).

        None = use the general path, `reserve_stock` (item missing, key taken, a guard failed, the
        units would cross the low-stock threshold or sell out: that path appends the event).
        """
        now = self._clock.now()
        async with self._db.hot() as hot:
            read = await hot.read_item_and_claim(cmd.item_id, cmd.key)
            if read is None or read.claimed:
                return None
            item = read.item
            if item.spec.per_user_limit > 0:
                return None  # needs the per-user lock and count in one transaction
            reservation = await self._planned(cmd, hot, item, read.campaign_links, now)
            reply = self._reply("ReserveStock", reservation)
            if not await hot.reserve(reservation, cmd.key, reply, low_threshold=self._low_threshold):
                return None
        log.info("stock_reserved", reservation_id=reservation.reservation_id, item_id=item.item_id)
        return reservation

    async def reserve_stock(self, cmd: ReserveStock, uow: UnitOfWork) -> Reservation:
        """The general path: every item, every reason, inside the caller's unit of work."""
        tx, now = self._db.on(uow), self._clock.now()
        reads = await tx.reads()
        found = await reads.read_item(cmd.item_id)
        if found is None:
            raise item_not_found(cmd.item_id)
        item, links = found
        reservation = await self._planned(cmd, reads, item, links, now)
        spec = item.spec
        if spec.per_user_limit > 0:
            # Only limited-per-user items serialize per (item, user); others take no lock here.
            await tx.reservations.lock_user_item(item.item_id, cmd.user_id)
            since = domain.limit_window_start(spec.per_user_limit_window, now)
            used = await reads.units_used(item.item_id, cmd.user_id, since, now)
            if cmd.quantity > domain.user_allowance(spec, used):
                raise _unavailable(domain.Unavailable.PER_USER_LIMIT_REACHED, item.item_id)
        if spec.limited_stock:
            left = await tx.items.take_stock(item.item_id, cmd.quantity)
            if left is None and await self._expire(tx, now, item.item_id):
                # Units of expired-but-unswept reservations are free again; try once more.
                left = await tx.items.take_stock(item.item_id, cmd.quantity)
            if left is None:
                raise _unavailable(domain.Unavailable.OUT_OF_STOCK, item.item_id)
            await tx.events.append(domain.stock_events(
                item.item_id, item.version, before=left.available + cmd.quantity, after=left.available,
                total=left.total, low_threshold=self._low_threshold), now)
        await tx.reservations.insert_reservation(reservation)
        log.info("stock_reserved", reservation_id=reservation.reservation_id, item_id=item.item_id)
        return reservation

    async def commit_fast(self, cmd: ResolveReservation) -> Reservation | None:
        return await self._resolve_fast("CommitReservation", cmd, ReservationState.COMMITTED)

    async def release_fast(self, cmd: ResolveReservation) -> Reservation | None:
        return await self._resolve_fast("ReleaseReservation", cmd, ReservationState.RELEASED)

    async def commit_reservation(self, cmd: ResolveReservation, uow: UnitOfWork) -> Reservation:
        return await self._resolve(cmd, ReservationState.COMMITTED, uow)

    async def release_reservation(self, cmd: ResolveReservation, uow: UnitOfWork) -> Reservation:
        return await self._resolve(cmd, ReservationState.RELEASED, uow)

    async def _resolve(self, cmd: ResolveReservation, target: ReservationState, uow: UnitOfWork) -> Reservation:
        """The general path. Both paths take the same decision (`domain.resolution`): the hot one
        applies it in one statement when it is APPLY, this one under the row lock in every case."""
        tx, now = self._db.on(uow), self._clock.now()
        r = await self._locked_reservation(tx, cmd.reservation_id)
        decision = domain.resolution(r, target, now)
        if decision.is_refusal:
            raise FailedPrecondition(decision.value, metadata={"reservation_id": r.reservation_id})
        if decision == domain.Resolution.UNCHANGED:
            return r
        await tx.reservations.resolve_reservation(r.reservation_id, target, now)
        if r.took_stock:
            await tx.items.settle_stock(r.item_id, r.quantity, sold=target == ReservationState.COMMITTED)
        _log_resolved(r, target)
        return replace(r, state=target, resolve_time=now)

    async def _resolve_fast(
        self, method: str, cmd: ResolveReservation, target: ReservationState
    ) -> Reservation | None:
        """An APPLY decision in one statement with its claim and reply.

        None = use the general path (it reports, replays or decides again under the lock; lost races too).
        """
        now = self._clock.now()
        async with self._db.hot() as hot:
            read = await hot.read_reservation_and_claim(cmd.reservation_id, cmd.key)
            if read is None or read.claimed:
                return None
            r = read.reservation
            if domain.resolution(r, target, now) != domain.Resolution.APPLY:
                return None
            resolved = replace(r, state=target, resolve_time=now)
            if not await hot.resolve(resolved, cmd.key, self._reply(method, resolved)):
                return None
        _log_resolved(r, target)
        return resolved

    async def return_stock(self, cmd: ReturnStock, uow: UnitOfWork) -> StockReturn:
        """Give units of a committed reservation back: sold -> available, and off the per-user count."""
        tx = self._db.on(uow)
        r = await self._locked_reservation(tx, cmd.reservation_id)
        refusal = domain.return_refusal(r, cmd.quantity)
        if refusal is not None:
            raise FailedPrecondition(refusal, metadata={
                "reservation_id": r.reservation_id, "returnable": str(r.returnable)})
        units = cmd.quantity or r.returnable
        await tx.reservations.add_returned(r.reservation_id, units)
        if r.took_stock and not await tx.items.unsell_stock(r.item_id, units):
            # Unreachable while the counters are balanced: the sale is counted in stock_sold.
            raise FailedPrecondition("RETURN_EXCEEDS_SOLD", metadata={"reservation_id": r.reservation_id})
        log.info("stock_returned", reservation_id=r.reservation_id, quantity=units)
        return StockReturn(replace(r, returned_quantity=r.returned_quantity + units), units)

    async def _locked_reservation(self, tx: Repositories, reservation_id: str) -> Reservation:
        r = await tx.reservations.get_reservation(reservation_id, for_update=True)
        if r is None:
            raise NotFound("RESERVATION_NOT_FOUND", metadata={"reservation_id": reservation_id})
        return r

    async def get_reservation(self, reservation_id: str) -> Reservation:
        r = await self._db.run(lambda uow: self._db.on(uow).reservations.get_reservation(reservation_id))
        if r is None:
            raise NotFound("RESERVATION_NOT_FOUND", metadata={"reservation_id": reservation_id})
        return r

    # --- expiry --------------------------------------------------------------------------------

    async def _expire(self, tx: Repositories, now: datetime, item_id: str | None = None) -> int:
        expired = await tx.reservations.expire_due(now, self._sweep_batch, item_id)
        returned: dict[str, int] = defaultdict(int)
        for e in expired:
            if e.took_stock:
                returned[e.item_id] += e.quantity
        for stock_item in sorted(returned):  # fixed order: no deadlock between sweepers
            await tx.items.settle_stock(stock_item, returned[stock_item], sold=False)
        return len(expired)

    async def expire_due(self) -> int:
        """One sweep: expire due active reservations and return their stock. Returns how many."""
        now = self._clock.now()
        total = 0
        while True:
            swept = await self._db.run(lambda uow: self._expire(self._db.on(uow), now))
            total += swept
            if swept < self._sweep_batch:
                break
        if total:
            log.info("reservations_expired", count=total)
        return total

    def sweeper(self, interval_seconds: float) -> Callable[[], Awaitable[None]]:
        """The background job releasing expired reservations."""

        async def sweep_expired_reservations() -> None:
            while True:
                await self.expire_due()
                await asyncio.sleep(interval_seconds)

        return sweep_expired_reservations
