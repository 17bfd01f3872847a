"""The catalog as the saga's `Catalog` port: items, quotes and stock reservations over gRPC."""

from __future__ import annotations

import grpc

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from redemption.domain.item import ItemKind, ItemSnapshot
from redemption.peers.calls import call, currency_name, time_of
from redemption.use_cases.ports import ItemInfo, QuoteInfo, ReservationInfo


def _item_info(item: catalog_pb2.Item) -> ItemInfo:
    kind = ItemKind(catalog_pb2.ItemKind.Name(item.kind).removeprefix("ITEM_KIND_"))
    draw_time = time_of(item.raffle.draw_time) if item.HasField("raffle") else None
    snapshot = ItemSnapshot(
        kind=kind,
        currency=currency_name(item.price.currency),
        raffle_id=item.raffle.raffle_id,
        gift_id=item.gift.gift_id,
        cosmetic_id=item.cosmetic.cosmetic_id,
        event_id=item.event_access.event_id,
        # Unset in the catalog: sales close at the draw (the catalog's default too).
        sales_close_time=(time_of(item.raffle.sales_close_time) or draw_time) if item.HasField("raffle") else None,
        max_uses=item.entitlement_terms.max_uses,
        unlimited_uses=item.entitlement_terms.unlimited_uses,
        valid_until=time_of(item.entitlement_terms.valid_until),
        valid_for_seconds=item.entitlement_terms.valid_for_seconds,
    )
    return ItemInfo(snapshot, draw_time, item.raffle.winners, item.version, item.limited_stock)


def _reservation(r: catalog_pb2.Reservation) -> ReservationInfo:
    return ReservationInfo(
        r.reservation_id,
        catalog_pb2.ReservationState.Name(r.state).removeprefix("RESERVATION_STATE_"),
        currency_name(r.total_price.currency),
        r.total_price.amount,
        time_of(r.expire_time),
        r.returned_quantity,
        r.item_version,
    )


class CatalogClient:
    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], timeout: float) -> None:
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        self._md = metadata
        self._timeout = timeout

    async def item(self, item_id: str) -> ItemInfo:
        reply = await call(self._stub.GetItem(catalog_pb2.GetItemRequest(item_id=item_id), metadata=self._md,
                                              timeout=self._timeout))
        return _item_info(reply.item)

    async def raffle_item(self, raffle_id: str) -> ItemInfo | None:
        """The raffle's item (its draw time and winner count), found by listing raffle items."""
        token = ""
        while True:
            reply = await call(self._stub.ListItems(
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
        reply = await call(self._stub.Quote(
            catalog_pb2.QuoteRequest(item_id=item_id, user_id=user_id, region=region, quantity=quantity),
            metadata=self._md, timeout=self._timeout))
        return QuoteInfo(reply.redeemable, reply.unavailable_reason, currency_name(reply.total_price.currency),
                         reply.total_price.amount, reply.stock_remaining, reply.user_remaining_allowance,
                         reply.item_version)

    async def reserve(self, request_id: str, item_id: str, user_id: str, quantity: int, region: str,
                      ttl_seconds: int) -> ReservationInfo:
        reply = await call(self._stub.ReserveStock(
            catalog_pb2.ReserveStockRequest(request_id=request_id, item_id=item_id, user_id=user_id,
                                            quantity=quantity, region=region, ttl_seconds=ttl_seconds),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def commit(self, request_id: str, reservation_id: str) -> ReservationInfo:
        reply = await call(self._stub.CommitReservation(
            catalog_pb2.CommitReservationRequest(request_id=request_id, reservation_id=reservation_id),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def release(self, request_id: str, reservation_id: str) -> ReservationInfo:
        reply = await call(self._stub.ReleaseReservation(
            catalog_pb2.ReleaseReservationRequest(request_id=request_id, reservation_id=reservation_id),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def return_stock(self, request_id: str, reservation_id: str, quantity: int) -> ReservationInfo:
        reply = await call(self._stub.ReturnStock(
            catalog_pb2.ReturnStockRequest(request_id=request_id, reservation_id=reservation_id, quantity=quantity),
            metadata=self._md, timeout=self._timeout))
        return _reservation(reply.reservation)

    async def reservation(self, reservation_id: str) -> ReservationInfo:
        reply = await call(self._stub.GetReservation(
            catalog_pb2.GetReservationRequest(reservation_id=reservation_id), metadata=self._md,
            timeout=self._timeout))
        return _reservation(reply.reservation)
