"""Catalog use cases: each is one transaction (or a read) orchestrating store and domain.

Mutations claim their request id in the same transaction as their effect; a domain error
rolls the claim back with everything else, so a retry is evaluated afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog import domain
from catalog.commands import (
    CreateCampaign,
    CreateItem,
    EndCampaign,
    Idempotent,
    Page,
    ReserveStock,
    ResolveReservation,
    ReturnStock,
    UpdateItem,
)
from catalog.domain import Campaign, Item, Reservation, ReservationState, Stock, StockReturn
from catalog.store import CatalogStore, Claim, ItemFilter, unit_of_work
from catalog.store.hot import HotPath, StoredClaim
from catalog.store.rows import from_snapshot, snapshot
from points_platform.clock import Clock
from points_platform.db import retry_serialization
from points_platform.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    idempotency_key_reused,
)

log = structlog.get_logger("catalog")

T = TypeVar("T", bound=Item | Campaign | Reservation | StockReturn)


def derived_id(prefix: str, request_id: str) -> str:
    """Ids derived from the idempotency key: stable across retries and reseeding."""
    return f"{prefix}-{hashlib.sha256(request_id.encode()).hexdigest()[:20]}"


def _unavailable(reason: domain.Unavailable, item_id: str) -> FailedPrecondition:
    # OUT_OF_STOCK included: FAILED_PRECONDITION for every domain refusal (see docs/catalog.md).
    return FailedPrecondition(reason.value, metadata={"item_id": item_id})


def _item_not_found(item_id: str) -> NotFound:
    return NotFound("ITEM_NOT_FOUND", f"no item {item_id}", metadata={"item_id": item_id})


class Catalog:
    """The catalog's use cases over one engine and one clock."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, *, default_ttl_seconds: int, sweep_batch: int = 500
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._default_ttl = default_ttl_seconds
        self._sweep_batch = sweep_batch
        self._hot = HotPath()

    async def _mutate(
        self, method: str, command: Idempotent, kind: type[T], effect: Callable[[CatalogStore, datetime], Awaitable[T]]
    ) -> T:
        """Claim the key, run the effect and store its reply, all in one transaction."""
        now = self._clock.now()

        async def attempt() -> T:
            async with unit_of_work(self._engine) as store:
                claim: Claim = await store.claim(method, command.request_id, command.fingerprint, now)
                if claim.fingerprint != command.fingerprint:
                    raise idempotency_key_reused(command.request_id)
                if claim.stored_response is not None:
                    replayed: T = from_snapshot(kind, claim.stored_response)
                    return replayed
                result = await effect(store, now)
                await store.save_response(method, command.request_id, snapshot(result))
                return result

        return await retry_serialization(attempt)

    # --- items ---------------------------------------------------------------------------------

    async def create_item(self, cmd: CreateItem) -> Item:
        async def effect(store: CatalogStore, now: datetime) -> Item:
            total = cmd.spec.stock_total if cmd.spec.limited_stock else 0
            item = Item(
                item_id=derived_id("item", cmd.request_id),
                version=1,
                spec=cmd.spec,
                stock=Stock(total, total, 0, 0),
                archived=False,
                create_time=now,
                update_time=now,
            )
            await store.insert_item(item)
            log.info("item_created", item_id=item.item_id, kind=cmd.spec.kind.name)
            return item

        return await self._mutate("CreateItem", cmd, Item, effect)

    async def update_item(self, cmd: UpdateItem) -> Item:
        async def effect(store: CatalogStore, now: datetime) -> Item:
            item = await store.get_item(cmd.item_id, for_update=True)
            if item is None:
                raise _item_not_found(cmd.item_id)
            if cmd.expected_version and cmd.expected_version != item.version:
                raise Aborted(
                    "VERSION_MISMATCH",
                    f"item is at version {item.version}, not {cmd.expected_version}",
                    metadata={"item_id": item.item_id, "current_version": str(item.version)},
                )
            stock = item.stock
            if cmd.spec.limited_stock:
                restocked = domain.restocked(item.stock, cmd.spec.stock_total)
                if restocked is None:
                    raise FailedPrecondition(
                        "STOCK_BELOW_COMMITTED",
                        "stock_total may not drop below reserved + sold units",
                        metadata={"reserved": str(stock.reserved), "sold": str(stock.sold)},
                    )
                stock = restocked
            updated = replace(
                item, version=item.version + 1, spec=cmd.spec, stock=stock, archived=cmd.archived, update_time=now
            )
            await store.replace_item(updated, item.version)
            log.info("item_updated", item_id=item.item_id, version=updated.version)
            return updated

        return await self._mutate("UpdateItem", cmd, Item, effect)

    async def get_item(self, item_id: str) -> Item:
        async with self._engine.connect() as conn:
            found = await self._hot.read_item(conn, item_id)
        if found is None:
            raise _item_not_found(item_id)
        return found[0]

    async def list_items(self, where: ItemFilter, after: tuple[datetime, str] | None, size: int) -> Page[Item]:
        async with self._engine.connect() as conn:
            found = await CatalogStore(conn).list_items(where, after, size + 1)
        page = found[:size]
        more = len(found) > size
        return Page(page, (page[-1].create_time, page[-1].item_id) if more else None)

    # --- campaigns -----------------------------------------------------------------------------

    async def create_campaign(self, cmd: CreateCampaign) -> Campaign:
        async def effect(store: CatalogStore, now: datetime) -> Campaign:
            for item_id in cmd.spec.item_ids:
                item = await store.get_item(item_id)
                if item is None:
                    raise _item_not_found(item_id)
                fixed = cmd.spec.fixed_price
                if fixed is not None and fixed.currency != item.spec.price.currency:
                    raise InvalidArgument(
                        "CURRENCY_MISMATCH",
                        f"fixed_price is in {fixed.currency.name}, item {item_id} in {item.spec.price.currency.name}",
                        field_violations=[("spec.fixed_price.currency", "must match every item's currency")],
                    )
            campaign = Campaign(derived_id("campaign", cmd.request_id), cmd.spec, now)
            await store.insert_campaign(campaign)
            log.info("campaign_created", campaign_id=campaign.campaign_id, sponsor=cmd.spec.sponsor)
            return campaign

        return await self._mutate("CreateCampaign", cmd, Campaign, effect)

    async def end_campaign(self, cmd: EndCampaign) -> Campaign:
        async def effect(store: CatalogStore, now: datetime) -> Campaign:
            campaign = await store.get_campaign(cmd.campaign_id, for_update=True)
            if campaign is None:
                raise NotFound(
                    "CAMPAIGN_NOT_FOUND", "no such campaign", metadata={"campaign_id": cmd.campaign_id}
                )
            if domain.has_ended(campaign, now):
                raise FailedPrecondition(
                    "CAMPAIGN_ALREADY_ENDED", "the campaign has already ended",
                    metadata={"campaign_id": cmd.campaign_id},
                )
            ended = replace(campaign, ended_time=now)
            await store.set_campaign_ended(cmd.campaign_id, now)
            log.info("campaign_ended", campaign_id=cmd.campaign_id)
            return ended

        return await self._mutate("EndCampaign", cmd, Campaign, effect)

    async def list_campaigns(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, size: int
    ) -> Page[Campaign]:
        async with self._engine.connect() as conn:
            found = await CatalogStore(conn).list_campaigns(region, active_at, after, size + 1)
        page = found[:size]
        more = len(found) > size
        return Page(page, (page[-1].create_time, page[-1].campaign_id) if more else None)

    # --- quote ---------------------------------------------------------------------------------

    async def quote(self, item_id: str, user_id: str, region: str, quantity: int) -> domain.Quote:
        now = self._clock.now()
        async with self._engine.connect() as conn:
            found = await self._hot.read_item(conn, item_id)
            if found is None:
                raise _item_not_found(item_id)
            item, links = found
            campaigns = await self._hot.campaigns(conn, item_id, links)
            used = 0
            if item.spec.per_user_limit > 0:
                since = domain.limit_window_start(item.spec.per_user_limit_window, now)
                used = await self._hot.units_used(conn, item_id, user_id, since, now)
        return domain.quote(item, campaigns, region, quantity, used, now)

    @staticmethod
    def _replay(request_id: str, fingerprint: str, claim: StoredClaim, kind: type[T]) -> T | None:
        """The stored reply of a same-key call; None while that call is still in flight."""
        if claim.fingerprint != fingerprint:
            raise idempotency_key_reused(request_id)
        if claim.response is None:
            return None
        replayed: T = from_snapshot(kind, claim.response)
        return replayed

    # --- reservations --------------------------------------------------------------------------

    def _new_reservation(self, cmd: ReserveStock, item: Item, priced: domain.PricedUnit, now: datetime) -> Reservation:
        ttl = cmd.ttl_seconds or self._default_ttl
        unit = priced.unit_price
        return Reservation(
            reservation_id=derived_id("rsv", cmd.request_id),
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

    async def _reserve_fast(self, cmd: ReserveStock) -> Reservation | None:
        """Items without a per-user limit: one read, then one statement (claim + stock + insert).

        None = use the general path (item missing, same key in flight, a guard failed).
        """
        now = self._clock.now()
        async with self._engine.connect() as conn:
            read = await self._hot.read_item_and_claim(conn, cmd.item_id, "ReserveStock", cmd.request_id)
            if read is None:
                return None
            if read.claim is not None:
                return self._replay(cmd.request_id, cmd.fingerprint, read.claim, Reservation)
            item = read.item
            if item.spec.per_user_limit > 0:
                return None  # needs the per-user lock and count in one transaction
            reason = domain.unavailable_reason(item, cmd.region, now)
            if reason is not None:
                raise _unavailable(reason, item.item_id)
            campaigns = await self._hot.campaigns(conn, item.item_id, read.campaign_links)
            reservation = self._new_reservation(cmd, item, domain.resolve_price(item, campaigns, cmd.region, now), now)
            if not await self._hot.reserve(conn, reservation, cmd.request_id, cmd.fingerprint, snapshot(reservation)):
                return None
        log.info("stock_reserved", reservation_id=reservation.reservation_id, item_id=item.item_id)
        return reservation

    async def reserve_stock(self, cmd: ReserveStock) -> Reservation:
        fast = await self._reserve_fast(cmd)
        if fast is not None:
            return fast

        async def effect(store: CatalogStore, now: datetime) -> Reservation:
            item = await store.get_item(cmd.item_id)
            if item is None:
                raise _item_not_found(cmd.item_id)
            reason = domain.unavailable_reason(item, cmd.region, now)
            if reason is not None:
                raise _unavailable(reason, item.item_id)
            priced = domain.resolve_price(item, await store.campaigns_for_item(item.item_id, now), cmd.region, now)
            spec = item.spec
            if spec.per_user_limit > 0:
                # Only limited-per-user items serialize per (item, user); others take no lock here.
                await store.lock_user_item(item.item_id, cmd.user_id)
                since = domain.limit_window_start(spec.per_user_limit_window, now)
                used = await store.units_used(item.item_id, cmd.user_id, since, now)
                if cmd.quantity > domain.user_allowance(spec, used):
                    raise _unavailable(domain.Unavailable.PER_USER_LIMIT_REACHED, item.item_id)
            if spec.limited_stock:
                left = await store.take_stock(item.item_id, cmd.quantity)
                if left is None and await self._expire(store, now, item.item_id):
                    # Units of expired-but-unswept reservations are free again; try once more.
                    left = await store.take_stock(item.item_id, cmd.quantity)
                if left is None:
                    raise _unavailable(domain.Unavailable.OUT_OF_STOCK, item.item_id)
            reservation = self._new_reservation(cmd, item, priced, now)
            await store.insert_reservation(reservation)
            log.info("stock_reserved", reservation_id=reservation.reservation_id, item_id=item.item_id)
            return reservation

        return await self._mutate("ReserveStock", cmd, Reservation, effect)

    async def _resolve_fast(
        self, method: str, cmd: ResolveReservation, target: ReservationState
    ) -> Reservation | None:
        """ACTIVE (and, to commit, not yet expired) -> target in one statement with its claim and reply.

        None = use the general path (any other state reports or replays there; lost races too).
        """
        now = self._clock.now()
        async with self._engine.connect() as conn:
            read = await self._hot.read_reservation_and_claim(conn, cmd.reservation_id, method, cmd.request_id)
            if read is None:
                return None
            if read.claim is not None:
                return self._replay(cmd.request_id, cmd.fingerprint, read.claim, Reservation)
            r = read.reservation
            if r.state != ReservationState.ACTIVE:
                return None
            if target == ReservationState.COMMITTED and now >= r.expire_time:
                return None
            resolved = replace(r, state=target, resolve_time=now)
            if not await self._hot.resolve(conn, method, resolved, cmd.request_id, cmd.fingerprint, snapshot(resolved)):
                return None
        log.info("reservation_" + ("committed" if target == ReservationState.COMMITTED else "released"),
                 reservation_id=r.reservation_id)
        return resolved

    async def commit_reservation(self, cmd: ResolveReservation) -> Reservation:
        fast = await self._resolve_fast("CommitReservation", cmd, ReservationState.COMMITTED)
        if fast is not None:
            return fast

        async def effect(store: CatalogStore, now: datetime) -> Reservation:
            r = await self._locked_reservation(store, cmd.reservation_id)
            if r.state == ReservationState.COMMITTED:
                return r
            if r.state == ReservationState.RELEASED:
                raise FailedPrecondition("RESERVATION_RELEASED", metadata={"reservation_id": r.reservation_id})
            if r.state == ReservationState.EXPIRED or now >= r.expire_time:
                # Past expire_time it is expired even before the sweeper marks it.
                raise FailedPrecondition("RESERVATION_EXPIRED", metadata={"reservation_id": r.reservation_id})
            await store.resolve_reservation(r.reservation_id, ReservationState.COMMITTED, now)
            if r.took_stock:
                await store.settle_stock(r.item_id, r.quantity, sold=True)
            log.info("reservation_committed", reservation_id=r.reservation_id)
            return replace(r, state=ReservationState.COMMITTED, resolve_time=now)

        return await self._mutate("CommitReservation", cmd, Reservation, effect)

    async def release_reservation(self, cmd: ResolveReservation) -> Reservation:
        fast = await self._resolve_fast("ReleaseReservation", cmd, ReservationState.RELEASED)
        if fast is not None:
            return fast

        async def effect(store: CatalogStore, now: datetime) -> Reservation:
            r = await self._locked_reservation(store, cmd.reservation_id)
            if r.state == ReservationState.COMMITTED:
                raise FailedPrecondition(
                    "RESERVATION_ALREADY_COMMITTED", metadata={"reservation_id": r.reservation_id}
                )
            if r.state != ReservationState.ACTIVE:
                return r  # released or expired: the stock is back already
            await store.resolve_reservation(r.reservation_id, ReservationState.RELEASED, now)
            if r.took_stock:
                await store.settle_stock(r.item_id, r.quantity, sold=False)
            log.info("reservation_released", reservation_id=r.reservation_id)
            return replace(r, state=ReservationState.RELEASED, resolve_time=now)

        return await self._mutate("ReleaseReservation", cmd, Reservation, effect)

    async def return_stock(self, cmd: ReturnStock) -> StockReturn:
        """Give units of a committed reservation back: sold -> available, and off the per-user count."""

        async def effect(store: CatalogStore, now: datetime) -> StockReturn:
            r = await self._locked_reservation(store, cmd.reservation_id)
            refusal = domain.return_refusal(r, cmd.quantity)
            if refusal is not None:
                raise FailedPrecondition(refusal, metadata={
                    "reservation_id": r.reservation_id, "returnable": str(r.returnable)})
            units = cmd.quantity or r.returnable
            await store.add_returned(r.reservation_id, units)
            if r.took_stock and not await store.unsell_stock(r.item_id, units):
                # Unreachable while the counters are balanced: the sale is counted in stock_sold.
                raise FailedPrecondition("RETURN_EXCEEDS_SOLD", metadata={"reservation_id": r.reservation_id})
            log.info("stock_returned", reservation_id=r.reservation_id, quantity=units)
            return StockReturn(replace(r, returned_quantity=r.returned_quantity + units), units)

        return await self._mutate("ReturnStock", cmd, StockReturn, effect)

    async def _locked_reservation(self, store: CatalogStore, reservation_id: str) -> Reservation:
        r = await store.get_reservation(reservation_id, for_update=True)
        if r is None:
            raise NotFound("RESERVATION_NOT_FOUND", metadata={"reservation_id": reservation_id})
        return r

    async def get_reservation(self, reservation_id: str) -> Reservation:
        async with self._engine.connect() as conn:
            r = await CatalogStore(conn).get_reservation(reservation_id)
        if r is None:
            raise NotFound("RESERVATION_NOT_FOUND", metadata={"reservation_id": reservation_id})
        return r

    # --- expiry --------------------------------------------------------------------------------

    async def _expire(self, store: CatalogStore, now: datetime, item_id: str | None = None) -> int:
        expired = await store.expire_due(now, self._sweep_batch, item_id)
        returned: dict[str, int] = defaultdict(int)
        for e in expired:
            if e.took_stock:
                returned[e.item_id] += e.quantity
        for stock_item in sorted(returned):  # fixed order: no deadlock between sweepers
            await store.settle_stock(stock_item, returned[stock_item], sold=False)
        return len(expired)

    async def expire_due(self) -> int:
        """One sweep: expire due active reservations and return their stock. Returns how many."""
        now = self._clock.now()
        total = 0
        while True:
            async with unit_of_work(self._engine) as store:
                swept = await self._expire(store, now)
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
