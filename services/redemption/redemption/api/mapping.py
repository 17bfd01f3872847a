"""Proto <-> domain of the redemption service: requests validated into commands and arguments, records into
messages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from google.protobuf import timestamp_pb2

from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as pb
from points_platform.auth import current_caller
from points_platform.errors import invalid_field
from points_platform.idempotency import RequestKey
from points_platform.validation import (
    fingerprint,
    require_id,
    require_positive,
    require_region,
    require_request_id,
    require_text,
)
from redemption.domain.saga import State
from redemption.use_cases.commands import ConsumeCommand, RedeemCommand, RefundCommand
from redemption.use_cases.records import EntitlementRow, RaffleDrawRow, SagaRecord, UseRow

MAX_QUANTITY = 1000
MAX_AGE_SECONDS = 10 * 366 * 86400
# Discount codes as granted (secrets.token_urlsafe); anything else cannot match one.
_DISCOUNT_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def _ts(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


# -- requests -----------------------------------------------------------------------------------


def redeem_command(request: pb.RedeemRequest, method: str) -> RedeemCommand:
    request_id, digest = require_request_id(request.request_id), fingerprint(request)
    user_id = require_id("user_id", request.user_id)
    return RedeemCommand(
        key=RequestKey.from_digest(method, request_id, digest, user_id=user_id),
        request_id=request_id,
        fingerprint=digest,
        user_id=user_id,
        item_id=require_id("item_id", request.item_id),
        quantity=require_positive("quantity", request.quantity, MAX_QUANTITY),
        region=require_region("region", request.region),
        recipient_id=require_id("recipient_id", request.recipient_id) if request.recipient_id else "",
    )


def refund_command(request: pb.RefundRedemptionRequest, method: str) -> RefundCommand:
    request_id, digest = require_request_id(request.request_id), fingerprint(request)
    return RefundCommand(
        key=RequestKey.from_digest(method, request_id, digest),
        request_id=request_id,
        fingerprint=digest,
        redemption_id=require_id("redemption_id", request.redemption_id),
        reason=require_text("reason", request.reason, 500),
    )


def consume_command(request: pb.ConsumeEntitlementRequest) -> ConsumeCommand:
    request_id = require_request_id(request.request_id)
    entitlement_id, code = entitlement_target(request)
    return ConsumeCommand(request_id, fingerprint(request), entitlement_id, code, current_caller.get(),
                          require_text("reference", request.reference, 200))


def entitlement_target(request: pb.ConsumeEntitlementRequest | pb.GetEntitlementRequest) -> tuple[str, str]:
    """(entitlement_id, discount_code) of a request naming exactly one of them."""
    case = request.WhichOneof("target")
    if case == "entitlement_id":
        return require_id("entitlement_id", request.entitlement_id), ""
    if case == "discount_code":
        if not _DISCOUNT_CODE.match(request.discount_code):
            raise invalid_field("discount_code", "must be 1-64 characters of [A-Za-z0-9_-]")
        return "", request.discount_code
    raise invalid_field("entitlement_id", "entitlement_id or discount_code is required", "ENTITLEMENT_REQUIRED")


def listed_states(request: pb.ListAllRedemptionsRequest) -> list[State]:
    """The states a ListAllRedemptions names (also checks its max age)."""
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
    return states


# -- replies ------------------------------------------------------------------------------------


def redemption(record: SagaRecord, entitlement_ids: Sequence[str]) -> pb.Redemption:
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


def entitlement(row: EntitlementRow) -> pb.Entitlement:
    return pb.Entitlement(
        entitlement_id=row.entitlement_id, user_id=row.user_id, redemption_id=row.redemption_id,
        kind=pb.EntitlementKind.Value(f"ENTITLEMENT_KIND_{row.kind.value}"), item_id=row.item_id,
        state=pb.EntitlementState.Value(f"ENTITLEMENT_STATE_{row.state.value}"),
        discount_code=row.discount_code or "", raffle_id=row.raffle_id, event_id=row.event_id,
        recipient_id=row.recipient_id, create_time=_ts(row.create_time), cosmetic_id=row.cosmetic_id,
        gift_id=row.gift_id, max_uses=row.max_uses, unlimited_uses=row.unlimited_uses, use_count=row.use_count,
        expire_time=_ts(row.expire_time),
    )


def use(row: UseRow) -> pb.EntitlementUse:
    return pb.EntitlementUse(request_id=row.request_id, entitlement_id=row.entitlement_id, caller=row.caller,
                             reference=row.reference, use_number=row.use_number, use_time=_ts(row.use_time))


def draw(row: RaffleDrawRow) -> pb.RaffleDraw:
    drawn = row.state == "DRAWN"
    return pb.RaffleDraw(
        raffle_id=row.raffle_id, seed_hash=row.seed_hash, seed=row.seed.hex() if drawn else "",
        winner_entitlement_ids=row.winner_entitlement_ids, winner_user_ids=row.winner_user_ids,
        ticket_count=row.ticket_count, draw_time=_ts(row.draw_time),
        state=pb.RaffleDrawState.Value(f"RAFFLE_DRAW_STATE_{row.state}"), prepare_time=_ts(row.prepare_time),
    )
