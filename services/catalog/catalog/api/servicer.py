"""The catalog servicer: validates requests, maps them to commands (`mapping.py`) and back, and the call policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from catalog.api import mapping as m
from catalog.domain import ItemKind, Reservation
from catalog.use_cases import commands as uc
from catalog.use_cases.campaigns import Campaigns
from catalog.use_cases.items import Items
from catalog.use_cases.ports import CatalogMemory, ItemFilter
from catalog.use_cases.quotes import Quotes
from catalog.use_cases.reservations import Reservations
from points.catalog.v1 import catalog_pb2 as pb
from points.catalog.v1 import catalog_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow
from points_platform.errors import invalid_field
from points_platform.idempotency import RequestKey, idempotent, method_name
from points_platform.pagination import decode_after, encode_after, page_size
from points_platform.server import ServiceSpec
from points_platform.unit_of_work import Transaction, Transactions
from points_platform.validation import require_id, require_region, require_request_id

FULL_NAME = "points.catalog.v1.CatalogService"

# Who may call what (docs/architecture.md, Policy); finer rules (e.g. per currency) live in the use cases.
POLICY: Policy = {
    "CreateItem": allow("admin"),
    "UpdateItem": allow("admin"),
    "CreateCampaign": allow("admin"),
    "EndCampaign": allow("admin"),
    "GetItem": ALL_CALLERS,
    "ListItems": ALL_CALLERS,
    "ListCampaigns": ALL_CALLERS,
    "GetCampaign": ALL_CALLERS,
    "Quote": ALL_CALLERS,
    "ReserveStock": allow("redemption"),
    "CommitReservation": allow("redemption"),
    "ReleaseReservation": allow("redemption"),
    "ReturnStock": allow("redemption"),
    "GetReservation": allow("redemption", "admin"),
}
# A quote reports one user's remaining allowance: an `app` call names that user (docs/architecture.md, Policy).
USER_SCOPED = {"Quote": "user_id"}

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
R = TypeVar("R", bound=Message)
Resolved = TypeVar("Resolved", pb.CommitReservationResponse, pb.ReleaseReservationResponse)


def request_key(method: str, request: Any, user_id: str = "") -> uc.RequestKey:
    """The key and fingerprint of a mutating request (`points_platform.idempotency`), its request_id validated."""
    require_request_id(request.request_id)
    key = RequestKey.of(method_name(FULL_NAME, method), request, user_id=user_id)
    return uc.RequestKey(key.user_id, key.request_id, key.method, key.fingerprint)


class CatalogApi(catalog_pb2_grpc.CatalogServiceServicer):
    """Mutations run once per request key: answered by the hot path when it applies, else by the use
    case inside `points_platform.idempotency.idempotent` (replay, reuse refusal, the reply stored
    with the effect)."""

    def __init__(
        self, transactions: Transactions, items: Items, campaigns: Campaigns, quotes: Quotes,
        reservations: Reservations, *, max_ttl_seconds: int, memory: CatalogMemory,
    ) -> None:
        self._transactions = transactions
        self._items = items
        self._campaigns = campaigns
        self._quotes = quotes
        self._reservations = reservations
        self._max_ttl = max_ttl_seconds
        self._memory = memory

    async def _once(self, key: uc.RequestKey, reply_type: type[R], work: Callable[[Transaction], Awaitable[R]]) -> R:
        platform_key = RequestKey(key.user_id, key.request_id, key.method, key.fingerprint)
        return await idempotent(self._transactions, platform_key, reply_type, work)

    async def _change(
        self, key: uc.RequestKey, reply_type: type[R], work: Callable[[Transaction], Awaitable[R]]
    ) -> R:
        """A change of items or campaigns (a replay too): answered only once no process serves what it
        replaced from memory (docs/catalog.md, Reads from memory)."""
        reply = await self._once(key, reply_type, work)
        await self._memory.settled()
        return reply

    async def CreateItem(self, request: pb.CreateItemRequest, context: Context) -> pb.CreateItemResponse:
        cmd = uc.CreateItem(request_key("CreateItem", request), m.item_spec(request.spec))

        async def work(tx: Transaction) -> pb.CreateItemResponse:
            return pb.CreateItemResponse(item=m.item_pb(await self._items.create_item(cmd, tx)))

        return await self._change(cmd.key, pb.CreateItemResponse, work)

    async def UpdateItem(self, request: pb.UpdateItemRequest, context: Context) -> pb.UpdateItemResponse:
        if request.expected_version < 0:
            raise invalid_field("expected_version", "must not be negative")
        cmd = uc.UpdateItem(
            request_key("UpdateItem", request),
            require_id("item_id", request.item_id),
            request.expected_version,
            m.item_spec(request.spec),
            request.archived,
        )

        async def work(tx: Transaction) -> pb.UpdateItemResponse:
            return pb.UpdateItemResponse(item=m.item_pb(await self._items.update_item(cmd, tx)))

        return await self._change(cmd.key, pb.UpdateItemResponse, work)

    async def GetItem(self, request: pb.GetItemRequest, context: Context) -> pb.GetItemResponse:
        item = await self._items.get_item(require_id("item_id", request.item_id))
        return pb.GetItemResponse(item=m.item_pb(item))

    async def ListItems(self, request: pb.ListItemsRequest, context: Context) -> pb.ListItemsResponse:
        if request.kind not in (0, *ItemKind._value2member_map_):
            raise invalid_field("kind", "must be one of the item kinds")
        where = ItemFilter(
            region=require_region("region", request.region) if request.region else "",
            kind=ItemKind(request.kind) if request.kind else None,
            available_at=m.optional_timestamp(request, "available_at", "available_at"),
            campaign_id=require_id("campaign_id", request.campaign_id) if request.campaign_id else "",
            include_archived=request.include_archived,
        )
        size = page_size(request.page_size)
        page = await self._items.list_items(where, decode_after(request.page_token), size)
        return pb.ListItemsResponse(
            items=[m.item_pb(i) for i in page.entries],
            next_page_token=encode_after(*page.next_after) if page.next_after else "",
        )

    async def Quote(self, request: pb.QuoteRequest, context: Context) -> pb.QuoteResponse:
        q = await self._quotes.quote(
            require_id("item_id", request.item_id),
            require_id("user_id", request.user_id),
            require_region("region", request.region),
            m.quantity(request.quantity),
        )
        reply = pb.QuoteResponse(
            redeemable=q.is_redeemable,
            unit_price=m.price_pb(q.priced.unit_price),
            total_price=m.price_pb(q.total_price),
            campaign_id=q.priced.campaign_id,
            stock_remaining=q.stock_remaining,
            user_remaining_allowance=q.user_remaining_allowance,
            unavailable_reason=q.unavailable.value if q.unavailable else "",
            item_version=q.item_version,
        )
        reply.quote_time.FromDatetime(q.quote_time)
        return reply

    async def ReserveStock(self, request: pb.ReserveStockRequest, context: Context) -> pb.ReserveStockResponse:
        if not 0 <= request.ttl_seconds <= self._max_ttl:
            raise invalid_field("ttl_seconds", f"must be between 0 (default) and {self._max_ttl}")
        cmd = uc.ReserveStock(
            request_key("ReserveStock", request, user_id=request.user_id),
            item_id=require_id("item_id", request.item_id),
            user_id=require_id("user_id", request.user_id),
            quantity=m.quantity(request.quantity),
            region=require_region("region", request.region),
            ttl_seconds=request.ttl_seconds,
        )
        fast = await self._reservations.reserve_fast(cmd)
        if fast is not None:
            return pb.ReserveStockResponse(reservation=m.reservation_pb(fast))

        async def work(tx: Transaction) -> pb.ReserveStockResponse:
            reserved = await self._reservations.reserve_stock(cmd, tx)
            return pb.ReserveStockResponse(reservation=m.reservation_pb(reserved))

        return await self._once(cmd.key, pb.ReserveStockResponse, work)

    async def CommitReservation(
        self, request: pb.CommitReservationRequest, context: Context
    ) -> pb.CommitReservationResponse:
        return await self._resolution(
            self._resolve("CommitReservation", request), pb.CommitReservationResponse,
            self._reservations.commit_fast, self._reservations.commit_reservation,
        )

    async def ReleaseReservation(
        self, request: pb.ReleaseReservationRequest, context: Context
    ) -> pb.ReleaseReservationResponse:
        return await self._resolution(
            self._resolve("ReleaseReservation", request), pb.ReleaseReservationResponse,
            self._reservations.release_fast, self._reservations.release_reservation,
        )

    async def _resolution(
        self,
        cmd: uc.ResolveReservation,
        reply_type: type[Resolved],
        fast: Callable[[uc.ResolveReservation], Awaitable[Reservation | None]],
        general: Callable[[uc.ResolveReservation, Transaction], Awaitable[Reservation]],
    ) -> Resolved:
        resolved = await fast(cmd)
        if resolved is not None:
            return reply_type(reservation=m.reservation_pb(resolved))

        async def work(tx: Transaction) -> Resolved:
            return reply_type(reservation=m.reservation_pb(await general(cmd, tx)))

        return await self._once(cmd.key, reply_type, work)

    async def ReturnStock(self, request: pb.ReturnStockRequest, context: Context) -> pb.ReturnStockResponse:
        if not 0 <= request.quantity <= m.MAX_QUANTITY:
            raise invalid_field("quantity", f"must be between 0 (all) and {m.MAX_QUANTITY}")
        cmd = uc.ReturnStock(
            request_key("ReturnStock", request),
            reservation_id=require_id("reservation_id", request.reservation_id),
            quantity=request.quantity,
        )

        async def work(tx: Transaction) -> pb.ReturnStockResponse:
            returned = await self._reservations.return_stock(cmd, tx)
            return pb.ReturnStockResponse(
                reservation=m.reservation_pb(returned.reservation), quantity_returned=returned.quantity_returned
            )

        return await self._once(cmd.key, pb.ReturnStockResponse, work)

    @staticmethod
    def _resolve(
        method: str, request: pb.CommitReservationRequest | pb.ReleaseReservationRequest
    ) -> uc.ResolveReservation:
        return uc.ResolveReservation(
            request_key(method, request), require_id("reservation_id", request.reservation_id)
        )

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: Context
    ) -> pb.GetReservationResponse:
        reservation = await self._reservations.get_reservation(require_id("reservation_id", request.reservation_id))
        return pb.GetReservationResponse(reservation=m.reservation_pb(reservation))

    async def CreateCampaign(
        self, request: pb.CreateCampaignRequest, context: Context
    ) -> pb.CreateCampaignResponse:
        cmd = uc.CreateCampaign(request_key("CreateCampaign", request), m.campaign_spec(request.spec))

        async def work(tx: Transaction) -> pb.CreateCampaignResponse:
            return pb.CreateCampaignResponse(campaign=m.campaign_pb(await self._campaigns.create_campaign(cmd, tx)))

        return await self._change(cmd.key, pb.CreateCampaignResponse, work)

    async def EndCampaign(self, request: pb.EndCampaignRequest, context: Context) -> pb.EndCampaignResponse:
        cmd = uc.EndCampaign(request_key("EndCampaign", request), require_id("campaign_id", request.campaign_id))

        async def work(tx: Transaction) -> pb.EndCampaignResponse:
            return pb.EndCampaignResponse(campaign=m.campaign_pb(await self._campaigns.end_campaign(cmd, tx)))

        return await self._change(cmd.key, pb.EndCampaignResponse, work)

    async def GetCampaign(self, request: pb.GetCampaignRequest, context: Context) -> pb.GetCampaignResponse:
        campaign = await self._campaigns.get_campaign(require_id("campaign_id", request.campaign_id))
        return pb.GetCampaignResponse(campaign=m.campaign_pb(campaign))

    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: Context
    ) -> pb.ListCampaignsResponse:
        size = page_size(request.page_size)
        page = await self._campaigns.list_campaigns(
            require_region("region", request.region) if request.region else "",
            m.optional_timestamp(request, "active_at", "active_at"),
            decode_after(request.page_token),
            size,
        )
        return pb.ListCampaignsResponse(
            campaigns=[m.campaign_pb(c) for c in page.entries],
            next_page_token=encode_after(*page.next_after) if page.next_after else "",
        )


def service_spec(api: CatalogApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.catalog", POLICY, register, USER_SCOPED)
