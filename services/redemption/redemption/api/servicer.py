"""The gRPC servicer of the redemption service and its call policy: each method validates its request into a
command or arguments (`mapping`), calls the use case and maps the answer back."""

from __future__ import annotations

from typing import Any

import grpc

from points.redemption.v1 import redemption_pb2 as pb
from points.redemption.v1 import redemption_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow, current_user
from points_platform.errors import NotFound
from points_platform.idempotency import RequestKey, method_name
from points_platform.pagination import decode_after, encode_after, page_size
from points_platform.server import ServiceSpec
from points_platform.validation import require_id, require_request_id
from redemption.api import mapping
from redemption.use_cases.entitlements import entitlement_not_found
from redemption.use_cases.records import SagaRecord
from redemption.use_cases.redemptions import RedemptionService

FULL_NAME = "points.redemption.v1.RedemptionService"
# Redeem and RefundRedemption keep their key on the saga row (folded storage, judged by
# points_platform.idempotency.check_same_request).
REDEEM = method_name(FULL_NAME, "Redeem")
REFUND = method_name(FULL_NAME, "RefundRedemption")
# Redeem answers this long before the caller's deadline, with PENDING if the saga is not done.
DEADLINE_MARGIN_SECONDS = 0.1

# Who may call what (docs/architecture.md, Policy); finer rules (e.g. per currency) live in the use cases.
POLICY: Policy = {
    "Redeem": allow("app", "admin"),
    "GetRedemption": ALL_CALLERS,
    "ListRedemptions": ALL_CALLERS,
    "ListAllRedemptions": allow("admin"),
    "ListEntitlements": ALL_CALLERS,
    "RefundRedemption": allow("admin"),
    "PrepareRaffleDraw": allow("admin"),
    "DrawRaffle": allow("admin"),
    "GetRaffleDraw": ALL_CALLERS,
    "ListRaffleTickets": ALL_CALLERS,
    # The services that honour entitlements (fulfilment) use them; the app only reads its user's.
    "ConsumeEntitlement": allow("fulfilment", "admin"),
    "GetEntitlement": ALL_CALLERS,
}
# One user's data: an `app` call names that user (platform auth.USER_HEADER, docs/architecture.md, Policy): the
# request field that must be that user; GetRedemption and GetEntitlement name no user ("": their servicers
# compare the owner of what they load).
USER_SCOPED = {"Redeem": "user_id", "GetRedemption": "", "ListRedemptions": "user_id",
               "ListEntitlements": "user_id", "GetEntitlement": ""}


def _wait_seconds(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(0.0, remaining - DEADLINE_MARGIN_SECONDS)


class RedemptionApi(redemption_pb2_grpc.RedemptionServiceServicer):
    def __init__(self, service: RedemptionService) -> None:
        self._service = service

    @staticmethod
    def _full(record: SagaRecord) -> pb.Redemption:
        """A redemption as read by `service.get` (step log and entitlement ids included)."""
        return mapping.redemption(record, record.entitlement_ids)

    async def Redeem(self, request: pb.RedeemRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.RedeemResponse:
        record = await self._service.redeem(mapping.redeem_command(request, REDEEM), _wait_seconds(context))
        return pb.RedeemResponse(redemption=self._full(record))

    async def GetRedemption(self, request: pb.GetRedemptionRequest,
                            context: grpc.aio.ServicerContext[Any, Any]) -> pb.GetRedemptionResponse:
        redemption_id = require_id("redemption_id", request.redemption_id)
        record = await self._service.get(redemption_id)
        scoped_to = current_user.get()
        if scoped_to and record.saga.user_id != scoped_to:  # another user's: as if it did not exist
            raise NotFound("REDEMPTION_NOT_FOUND", metadata={"redemption_id": redemption_id})
        return pb.GetRedemptionResponse(redemption=self._full(record))

    async def ListRedemptions(self, request: pb.ListRedemptionsRequest,
                              context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListRedemptionsResponse:
        user_id = require_id("user_id", request.user_id)
        size = page_size(request.page_size)
        records = await self._service.list_redemptions(user_id, size + 1, decode_after(request.page_token))
        token = ""
        if len(records) > size:
            records = records[:size]
            last = records[-1]
            token = encode_after(last.create_time, last.saga.redemption_id)
        return pb.ListRedemptionsResponse(redemptions=[mapping.redemption(r, []) for r in records],
                                          next_page_token=token)

    async def ListAllRedemptions(self, request: pb.ListAllRedemptionsRequest,
                                 context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListAllRedemptionsResponse:
        states = mapping.listed_states(request)
        size = page_size(request.page_size)
        records = await self._service.list_all_redemptions(
            states, request.max_age_seconds, size + 1, decode_after(request.page_token))
        token = ""
        if len(records) > size:
            records = records[:size]
            token = encode_after(records[-1].create_time, records[-1].saga.redemption_id)
        return pb.ListAllRedemptionsResponse(
            redemptions=[mapping.redemption(r, []) for r in records], next_page_token=token)

    async def ListEntitlements(self, request: pb.ListEntitlementsRequest,
                               context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListEntitlementsResponse:
        user_id = require_id("user_id", request.user_id)
        size = page_size(request.page_size)
        rows = await self._service.list_entitlements(user_id, size + 1, decode_after(request.page_token))
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = encode_after(rows[-1].create_time, rows[-1].entitlement_id)
        return pb.ListEntitlementsResponse(entitlements=[mapping.entitlement(r) for r in rows], next_page_token=token)

    async def RefundRedemption(self, request: pb.RefundRedemptionRequest,
                               context: grpc.aio.ServicerContext[Any, Any]) -> pb.RefundRedemptionResponse:
        record = await self._service.refund(mapping.refund_command(request, REFUND), _wait_seconds(context))
        return pb.RefundRedemptionResponse(redemption=self._full(record))

    async def PrepareRaffleDraw(self, request: pb.PrepareRaffleDrawRequest,
                                context: grpc.aio.ServicerContext[Any, Any]) -> pb.PrepareRaffleDrawResponse:
        require_request_id(request.request_id)
        return await self._service.raffles.prepare_draw(
            RequestKey.of(method_name(FULL_NAME, "PrepareRaffleDraw"), request),
            require_id("raffle_id", request.raffle_id), pb.PrepareRaffleDrawResponse,
            lambda draw: pb.PrepareRaffleDrawResponse(draw=mapping.draw(draw)))

    async def DrawRaffle(self, request: pb.DrawRaffleRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.DrawRaffleResponse:
        require_request_id(request.request_id)
        return await self._service.raffles.draw(
            RequestKey.of(method_name(FULL_NAME, "DrawRaffle"), request),
            require_id("raffle_id", request.raffle_id), pb.DrawRaffleResponse,
            lambda draw: pb.DrawRaffleResponse(draw=mapping.draw(draw)))

    async def ConsumeEntitlement(self, request: pb.ConsumeEntitlementRequest,
                                 context: grpc.aio.ServicerContext[Any, Any]) -> pb.ConsumeEntitlementResponse:
        return await self._service.uses.consume(
            mapping.consume_command(request),
            RequestKey.of(method_name(FULL_NAME, "ConsumeEntitlement"), request), pb.ConsumeEntitlementResponse,
            lambda result: pb.ConsumeEntitlementResponse(entitlement=mapping.entitlement(result.entitlement),
                                                         use=mapping.use(result.use)))

    async def GetEntitlement(self, request: pb.GetEntitlementRequest,
                             context: grpc.aio.ServicerContext[Any, Any]) -> pb.GetEntitlementResponse:
        entitlement_id, code = mapping.entitlement_target(request)
        row, uses = await self._service.uses.get(entitlement_id, code)
        scoped_to = current_user.get()
        if scoped_to and row.user_id != scoped_to:  # another user's: as if it did not exist
            raise entitlement_not_found(entitlement_id)
        return pb.GetEntitlementResponse(entitlement=mapping.entitlement(row), uses=[mapping.use(u) for u in uses])

    async def GetRaffleDraw(self, request: pb.GetRaffleDrawRequest,
                            context: grpc.aio.ServicerContext[Any, Any]) -> pb.GetRaffleDrawResponse:
        draw = await self._service.raffles.get_draw(require_id("raffle_id", request.raffle_id))
        return pb.GetRaffleDrawResponse(draw=mapping.draw(draw))

    async def ListRaffleTickets(self, request: pb.ListRaffleTicketsRequest,
                                context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListRaffleTicketsResponse:
        raffle_id = require_id("raffle_id", request.raffle_id)
        size = page_size(request.page_size)
        tickets = await self._service.raffles.raffle_tickets(raffle_id, size + 1, decode_after(request.page_token))
        token = ""
        if len(tickets) > size:
            tickets = tickets[:size]
            token = encode_after(*tickets[-1])
        return pb.ListRaffleTicketsResponse(ticket_entitlement_ids=[t for _, t in tickets], next_page_token=token)


def service_spec(api: RedemptionApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        redemption_pb2_grpc.add_RedemptionServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.redemption", POLICY, register, USER_SCOPED)
