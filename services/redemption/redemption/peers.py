"""Clients of the wallet and catalog: proto <-> plain values, and gRPC errors sorted into
business refusals (the saga compensates) and transient failures (the saga retries later)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import grpc

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.common.v1 import common_pb2
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.client import error_reason
from redemption.domain.item import ItemKind, ItemSnapshot

T = TypeVar("T")

# Codes that mean "the peer said no" when it also names a reason; anything else is retried.
_REFUSAL_CODES = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE,
})


class PeerRefused(Exception):
    """The peer refused for a business reason (INSUFFICIENT_FUNDS, OUT_OF_STOCK, HOLD_EXPIRED...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerUnavailable(Exception):
    """Transient: unreachable, deadline, aborted, crashed mid-call. Retrying the same request is safe."""


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        reason = error_reason(exc)
        if exc.code() in _REFUSAL_CODES and reason:
            raise PeerRefused(reason) from None
        raise PeerUnavailable(f"{exc.code().name}: {exc.details()}") from None


def _currency_name(value: common_pb2.Currency.ValueType) -> str:
    return common_pb2.Currency.Name(value).removeprefix("CURRENCY_")


def _currency(name: str) -> common_pb2.Currency.ValueType:
    return common_pb2.Currency.Value(f"CURRENCY_{name}")


def _time(ts: object) -> datetime | None:
    seconds = getattr(ts, "seconds", 0)
    nanos = getattr(ts, "nanos", 0)
    if not seconds and not nanos:
        return None
    return datetime.fromtimestamp(seconds + nanos / 1e9, UTC)


@dataclass(frozen=True)
class ItemInfo:
    snapshot: ItemSnapshot
    draw_time: datetime | None = None
    winners: int = 0
    version: int = 0
    limited_stock: bool = True


@dataclass(frozen=True)
class QuoteInfo:
    redeemable: bool
    reason: str
    currency: str
    amount: int


@dataclass(frozen=True)
class ReservationInfo:
    reservation_id: str
    state: str  # ACTIVE, COMMITTED, RELEASED, EXPIRED
    currency: str
    amount: int
    expire_time: datetime | None
    returned_quantity: int = 0
    item_version: int = 0


@dataclass(frozen=True)
class HoldInfo:
    hold_id: str
    state: str  # ACTIVE, COMMITTED, RELEASED, EXPIRED


def _item_info(item: catalog_pb2.Item) -> ItemInfo:
    kind = ItemKind(catalog_pb2.ItemKind.Name(item.kind).removeprefix("ITEM_KIND_"))
    draw_time = _time(item.raffle.draw_time) if item.HasField("raffle") else None
    snapshot = ItemSnapshot(
        kind=kind,
        currency=_currency_name(item.price.currency),
        raffle_id=item.raffle.raffle_id,
        gift_id=item.gift.gift_id,
        cosmetic_id=item.cosmetic.cosmetic_id,
        event_id=item.event_access.event_id,
        # Unset in the catalog: sales close at the draw (the catalog's default too).
        sales_close_time=(_time(item.raffle.sales_close_time) or draw_time) if item.HasField("raffle") else None,
        max_uses=item.entitlement_terms.max_uses,
        unlimited_uses=item.entitlement_terms.unlimited_uses,
        valid_until=_time(item.entitlement_terms.valid_until),
        valid_for_seconds=item.entitlement_terms.valid_for_seconds,
    )
    return ItemInfo(snapshot, draw_time, item.raffle.winners, item.version, item.limited_stock)


def _reservation(r: catalog_pb2.Reservation) -> ReservationInfo:
    return ReservationInfo(
        r.reservation_id,
        catalog_pb2.ReservationState.Name(r.state).removeprefix("RESERVATION_STATE_"),
        _currency_name(r.total_price.currency),
        r.total_price.amount,
        _time(r.expire_time),
        r.returned_quantity,
        r.item_version,
    )


def _hold(h: wallet_pb2.Hold) -> HoldInfo:
    return HoldInfo(h.hold_id, wallet_pb2.HoldState.Name(h.state).removeprefix("HOLD_STATE_"))


class CatalogClient:
    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], timeout: float) -> None:
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        self._md = metadata
        self._timeout = timeout

    async def item(self, item_id: str) -> ItemInfo:
        reply = await _call(self._stub.GetItem(catalog_pb2.GetItemRequest(item_id=item_id), metadata=self._md,
                                               timeout=self._timeout))
        return _item_info(reply.item)

    async def raffle_item(self, raffle_id: str) -> ItemInfo | None:
        """The raffle's item (its draw time and winner count), found by listing raffle items."""
        token = ""
        while True:
            reply = await _call(self._stub.ListItems(
                catalog_pb2.ListItemsRequest(kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET, include_archived=True,
                                             page_size=200, page_token=token),
                metadata=self._md, timeout=self._timeout))
            for item in reply.items:
                if item.raffle.raffle_id == raffle_id:
                    return _item_info(item)
            token = reply.next_page_token
            if not token:
                return None

    async def quote(self, item_id: str, user_id: str, region: str, quantity: int) -> QuoteInfo:
        reply = await _call(self._stub.Quote(
            catalog_pb2.QuoteRequest(item_id=item_id, user_id=user_id, region=region, quantity=quantity),
            metadata=self._md, timeout=self._timeout))
        return QuoteInfo(reply.redeemable, reply.unavailable_reason, _currency_name(reply.total_price.currency),
                         reply.total_price.amount)

    async def reserve(self, request_id: str, item_id: str, user_id: str, quantity: int, region: str,
                      ttl_seconds: int) -> ReservationInfo:
        reply = await _call(self._stub.ReserveStock(
            catalog_pb2.ReserveStockRequest(request_id=request_id, item_id=item_id, user_id=user_id,
                                            quantity=quantity, region=region, ttl_seconds=ttl_seconds),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def commit(self, request_id: str, reservation_id: str) -> ReservationInfo:
        reply = await _call(self._stub.CommitReservation(
            catalog_pb2.CommitReservationRequest(request_id=request_id, reservation_id=reservation_id),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def release(self, request_id: str, reservation_id: str) -> ReservationInfo:
        reply = await _call(self._stub.ReleaseReservation(
            catalog_pb2.ReleaseReservationRequest(request_id=request_id, reservation_id=reservation_id),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def return_stock(self, request_id: str, reservation_id: str, quantity: int) -> ReservationInfo:
        reply = await _call(self._stub.ReturnStock(
            catalog_pb2.ReturnStockRequest(request_id=request_id, reservation_id=reservation_id, quantity=quantity),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def reservation(self, reservation_id: str) -> ReservationInfo:
        reply = await _call(self._stub.GetReservation(
            catalog_pb2.GetReservationRequest(reservation_id=reservation_id), metadata=self._md,
            timeout=self._timeout))
        return _reservation(reply.reservation)


class WalletClient:
    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], timeout: float) -> None:
        self._stub = wallet_pb2_grpc.WalletServiceStub(channel)
        self._md = metadata
        self._timeout = timeout

    async def available(self, user_id: str, currency: str) -> int:
        reply = await _call(self._stub.GetBalance(
            wallet_pb2.GetBalanceRequest(user_id=user_id, currency=_currency(currency)),
            metadata=self._md, timeout=self._timeout))
        return sum(b.available for b in reply.balances)

    async def reserve(self, request_id: str, user_id: str, currency: str, amount: int, ttl_seconds: int,
                      reference: str) -> HoldInfo:
        reply = await _call(self._stub.Reserve(
            wallet_pb2.ReserveRequest(request_id=request_id, user_id=user_id, currency=_currency(currency),
                                      amount=amount, ttl_seconds=ttl_seconds, reference=reference),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def commit(self, request_id: str, hold_id: str, reason: str) -> HoldInfo:
        reply = await _call(self._stub.CommitHold(
            wallet_pb2.CommitHoldRequest(request_id=request_id, hold_id=hold_id, reason=reason),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def release(self, request_id: str, hold_id: str) -> HoldInfo:
        reply = await _call(self._stub.ReleaseHold(
            wallet_pb2.ReleaseHoldRequest(request_id=request_id, hold_id=hold_id),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def refund_hold(self, request_id: str, hold_id: str, amount: int, reason: str) -> HoldInfo:
        reply = await _call(self._stub.RefundHold(
            wallet_pb2.RefundHoldRequest(request_id=request_id, hold_id=hold_id, amount=amount, reason=reason),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def hold(self, hold_id: str) -> HoldInfo:
        reply = await _call(self._stub.GetHold(wallet_pb2.GetHoldRequest(hold_id=hold_id), metadata=self._md,
                                               timeout=self._timeout))
        return _hold(reply.hold)

    async def send_gift(self, request_id: str, sender_id: str, creator_id: str, coins: int, gift_id: str) -> None:
        await _call(self._stub.SendGift(
            wallet_pb2.SendGiftRequest(request_id=request_id, sender_id=sender_id, creator_id=creator_id,
                                       coins=coins, gift_id=gift_id),
            metadata=self._md, timeout=self._timeout))

    async def credit(self, request_id: str, user_id: str, currency: str, amount: int, reason: str,
                     reference: str) -> None:
        await _call(self._stub.Credit(
            wallet_pb2.CreditRequest(request_id=request_id, user_id=user_id, currency=_currency(currency),
                                     amount=amount, reason=reason, reference=reference),
            metadata=self._md, timeout=self._timeout))
