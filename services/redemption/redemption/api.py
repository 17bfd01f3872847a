"""gRPC transport of the redemption service: proto <-> use case mapping and the call policy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as pb
from points.redemption.v1 import redemption_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow, current_caller, current_user
from points_platform.errors import NotFound, invalid_field
from points_platform.idempotency import RequestKey, method_name
from points_platform.pagination import decode_after, encode_after, page_size
from points_platform.server import ServiceSpec
from points_platform.validation import (
    fingerprint,
    require_id,
    require_positive,
    require_region,
    require_request_id,
    require_text,
)
from redemption.domain.saga import State
from redemption.store import EntitlementRow, RaffleDrawRow, SagaRecord, UseRow
from redemption.use_cases import RedeemCommand, RedemptionService
from redemption.use_cases.entitlements import ConsumeCommand, entitlement_not_found

FULL_NAME = "points.redemption.v1.RedemptionService"
MAX_QUANTITY = 1000
MAX_AGE_SECONDS = 10 * 366 * 86400
# Redeem answers this long before the caller's deadline, with PENDING if the saga is not done.
DEADLINE_MARGIN_SECONDS = 0.1
# Discount codes as granted (secrets.token_urlsafe); anything else cannot match one.
_DISCOUNT_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

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
USER_SCOPED = {"Redeem": "user_id", "GetRedemption": "", "ListRedemptions": "user_id", "ListEntitlements": "user_id",
               "GetEntitlement": ""}


def _ts(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def _redemption(record: SagaRecord, entitlement_ids: Sequence[str]) -> pb.Redemption:
    saga = record.saga
    message = pb.Redemption(
        redemption_id=saga.redemption_id,
        request_id=record.request_id,
        user_id=saga.user_id,
        item_id=saga.item_id,
        quantity=saga.quantity,
        region=saga.region,
        recipient_id=saga.recipient_id,
        state=pb.RedemptionState.Value(f"REDEMPTION_STATE_{saga.state.value}"),
        cancel_reason=saga.cancel_reason,
        create_time=_ts(record.create_time),
        update_time=_ts(record.update_time),
        entitlement_ids=list(entitlement_ids),
        reservation_id=saga.reservation_id,
        hold_id=saga.hold_id,
        refund_reason=record.refund_reason,
        steps=[
            pb.SagaStep(
                name=pb.SagaStepName.Value(f"SAGA_STEP_NAME_{s.name.value}"),
                outcome=pb.StepOutcome.Value(f"STEP_OUTCOME_{s.outcome.value}"),
                detail=s.detail,
                time=_ts(s.time),
            )
            for s in record.steps
        ],
    )
    if saga.currency:
        message.price.CopyFrom(common_pb2.Price(currency=common_pb2.Currency.Value(f"CURRENCY_{saga.currency}"),
                                                amount=saga.amount))
    return message


def _entitlement(row: EntitlementRow) -> pb.Entitlement:
    return pb.Entitlement(
        entitlement_id=row.entitlement_id, user_id=row.user_id, redemption_id=row.redemption_id,
        kind=pb.EntitlementKind.Value(f"ENTITLEMENT_KIND_{row.kind.value}"), item_id=row.item_id,
        state=pb.EntitlementState.Value(f"ENTITLEMENT_STATE_{row.state.value}"),
        discount_code=row.discount_code or "", raffle_id=row.raffle_id, event_id=row.event_id,
        recipient_id=row.recipient_id, create_time=_ts(row.create_time), cosmetic_id=row.cosmetic_id,
        gift_id=row.gift_id, max_uses=row.max_uses, unlimited_uses=row.unlimited_uses, use_count=row.use_count,
        expire_time=_ts(row.expire_time),
    )


def _use(use: UseRow) -> pb.EntitlementUse:
    return pb.EntitlementUse(request_id=use.request_id, entitlement_id=use.entitlement_id, caller=use.caller,
                             reference=use.reference, use_number=use.use_number, use_time=_ts(use.use_time))


def _target(request: pb.ConsumeEntitlementRequest | pb.GetEntitlementRequest) -> tuple[str, str]:
    """(entitlement_id, discount_code) of a request naming exactly one of them."""
    case = request.WhichOneof("target")
    if case == "entitlement_id":
        return require_id("entitlement_id", request.entitlement_id), ""
    if case == "discount_code":
        if not _DISCOUNT_CODE.match(request.discount_code):
            raise invalid_field("discount_code", "must be 1-64 characters of [A-Za-z0-9_-]")
        return "", request.discount_code
    raise invalid_field("entitlement_id", "entitlement_id or discount_code is required", "ENTITLEMENT_REQUIRED")


def _draw(row: RaffleDrawRow) -> pb.RaffleDraw:
    drawn = row.state == "DRAWN"
    return pb.RaffleDraw(
        raffle_id=row.raffle_id, seed_hash=row.seed_hash, seed=row.seed.hex() if drawn else "",
        winner_entitlement_ids=row.winner_entitlement_ids, winner_user_ids=row.winner_user_ids,
        ticket_count=row.ticket_count, draw_time=_ts(row.draw_time),
        state=pb.RaffleDrawState.Value(f"RAFFLE_DRAW_STATE_{row.state}"), prepare_time=_ts(row.prepare_time),
    )


def _wait_seconds(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(0.0, remaining - DEADLINE_MARGIN_SECONDS)


class RedemptionApi(redemption_pb2_grpc.RedemptionServiceServicer):
    def __init__(self, service: RedemptionService) -> None:
        self._service = service

    @staticmethod
    def _full(record: SagaRecord) -> pb.Redemption:
        """A redemption as read by `service.get` (step log and entitlement ids included)."""
        return _redemption(record, record.entitlement_ids)

    async def Redeem(self, request: pb.RedeemRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.RedeemResponse:
        command = RedeemCommand(
            request_id=require_request_id(request.request_id),
            fingerprint=fingerprint(request),
            user_id=require_id("user_id", request.user_id),
            item_id=require_id("item_id", request.item_id),
            quantity=require_positive("quantity", request.quantity, MAX_QUANTITY),
            region=require_region("region", request.region),
            recipient_id=require_id("recipient_id", request.recipient_id) if request.recipient_id else "",
        )
        record = await self._service.redeem(command, _wait_seconds(context))
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
        return pb.ListRedemptionsResponse(redemptions=[_redemption(r, []) for r in records], next_page_token=token)

    async def ListAllRedemptions(self, request: pb.ListAllRedemptionsRequest,
                                 context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListAllRedemptionsResponse:
        if any(s == pb.REDEMPTION_STATE_UNSPECIFIED for s in request.states):
            raise invalid_field("states", "must name states, not REDEMPTION_STATE_UNSPECIFIED")
        if not 0 <= request.max_age_seconds <= MAX_AGE_SECONDS:
            raise invalid_field("max_age_seconds", f"must be 0 (any age) to {MAX_AGE_SECONDS}")
        # The proto's names are the domain's with a prefix; unknown numbers are refused rather than ignored.
        states: list[State] = []
        for number in request.states:
            if number not in pb.RedemptionState.values():
                raise invalid_field("states", f"unknown state {number}")
            states.append(State(pb.RedemptionState.Name(number).removeprefix("REDEMPTION_STATE_")))
        size = page_size(request.page_size)
        records = await self._service.list_all_redemptions(
            states, request.max_age_seconds, size + 1, decode_after(request.page_token))
        token = ""
        if len(records) > size:
            records = records[:size]
            token = encode_after(records[-1].create_time, records[-1].saga.redemption_id)
        return pb.ListAllRedemptionsResponse(
            redemptions=[_redemption(r, []) for r in records], next_page_token=token)

    async def ListEntitlements(self, request: pb.ListEntitlementsRequest,
                               context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListEntitlementsResponse:
        user_id = require_id("user_id", request.user_id)
        size = page_size(request.page_size)
        rows = await self._service.list_entitlements(user_id, size + 1, decode_after(request.page_token))
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = encode_after(rows[-1].create_time, rows[-1].entitlement_id)
        return pb.ListEntitlementsResponse(entitlements=[_entitlement(r) for r in rows], next_page_token=token)

    async def RefundRedemption(self, request: pb.RefundRedemptionRequest,
                               context: grpc.aio.ServicerContext[Any, Any]) -> pb.RefundRedemptionResponse:
        record = await self._service.refund(
            require_request_id(request.request_id), fingerprint(request),
            require_id("redemption_id", request.redemption_id), require_text("reason", request.reason, 500),
            _wait_seconds(context))
        return pb.RefundRedemptionResponse(redemption=self._full(record))

    async def PrepareRaffleDraw(self, request: pb.PrepareRaffleDrawRequest,
                                context: grpc.aio.ServicerContext[Any, Any]) -> pb.PrepareRaffleDrawResponse:
        require_request_id(request.request_id)
        return await self._service.prepare_draw(
            RequestKey.of(method_name(FULL_NAME, "PrepareRaffleDraw"), request),
            require_id("raffle_id", request.raffle_id), pb.PrepareRaffleDrawResponse,
            lambda draw: pb.PrepareRaffleDrawResponse(draw=_draw(draw)))

    async def DrawRaffle(self, request: pb.DrawRaffleRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.DrawRaffleResponse:
        require_request_id(request.request_id)
        return await self._service.draw(
            RequestKey.of(method_name(FULL_NAME, "DrawRaffle"), request),
            require_id("raffle_id", request.raffle_id), pb.DrawRaffleResponse,
            lambda draw: pb.DrawRaffleResponse(draw=_draw(draw)))

    async def ConsumeEntitlement(self, request: pb.ConsumeEntitlementRequest,
                                 context: grpc.aio.ServicerContext[Any, Any]) -> pb.ConsumeEntitlementResponse:
        request_id = require_request_id(request.request_id)
        entitlement_id, code = _target(request)
        return await self._service.uses.consume(
            ConsumeCommand(request_id, fingerprint(request), entitlement_id, code, current_caller.get(),
                           require_text("reference", request.reference, 200)),
            RequestKey.of(method_name(FULL_NAME, "ConsumeEntitlement"), request), pb.ConsumeEntitlementResponse,
            lambda result: pb.ConsumeEntitlementResponse(entitlement=_entitlement(result.entitlement),
                                                         use=_use(result.use)))

    async def GetEntitlement(self, request: pb.GetEntitlementRequest,
                             context: grpc.aio.ServicerContext[Any, Any]) -> pb.GetEntitlementResponse:
        entitlement_id, code = _target(request)
        row, uses = await self._service.uses.get(entitlement_id, code)
        scoped_to = current_user.get()
        if scoped_to and row.user_id != scoped_to:  # another user's: as if it did not exist
            raise entitlement_not_found(entitlement_id)
        return pb.GetEntitlementResponse(entitlement=_entitlement(row), uses=[_use(u) for u in uses])

    async def GetRaffleDraw(self, request: pb.GetRaffleDrawRequest,
                            context: grpc.aio.ServicerContext[Any, Any]) -> pb.GetRaffleDrawResponse:
        return pb.GetRaffleDrawResponse(draw=_draw(await self._service.get_draw(require_id("raffle_id",
                                                                                        request.raffle_id))))

    async def ListRaffleTickets(self, request: pb.ListRaffleTicketsRequest,
                                context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListRaffleTicketsResponse:
        raffle_id = require_id("raffle_id", request.raffle_id)
        size = page_size(request.page_size)
        tickets = await self._service.raffle_tickets(raffle_id, size + 1, decode_after(request.page_token))
        token = ""
        if len(tickets) > size:
            tickets = tickets[:size]
            token = encode_after(*tickets[-1])
        return pb.ListRaffleTicketsResponse(ticket_entitlement_ids=[t for _, t in tickets], next_page_token=token)


def service_spec(api: RedemptionApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        redemption_pb2_grpc.add_RedemptionServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.redemption", POLICY, register, USER_SCOPED)
