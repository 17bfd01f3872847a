"""Hypothesis-generated requests to every redemption RPC: a typed error or OK, never INTERNAL/UNKNOWN.

Hypothesis drives a synchronous test in a worker thread; each call runs on the session event loop,
where the servers and channels live.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points.redemption.v1 import redemption_pb2 as pb
from points_platform.client import acting_for, fits_header
from tests.redemption.conftest import Suite, cosmetic_spec, md, uid
from tests.support.rpc import on_loop, status_of

ALLOWED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS,
}
INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
TEXT = st.one_of(st.text(max_size=140), st.sampled_from(["", "u1", "US", "x" * 129, "a\x00b", "\u2603", "abc:def"]))
REGION = st.one_of(st.sampled_from(["US", "DE", "", "us", "ZZZ"]), st.text(max_size=3))


async def test_random_requests_never_crash_the_server(suite: Suite) -> None:
    loop = asyncio.get_running_loop()
    user = uid("fuzz")
    await suite.fund(user, 10_000)
    item = await suite.item(**cosmetic_spec(price=1))
    done = await suite.redeem(user, item.item_id)
    known_items = st.sampled_from([item.item_id, "missing-item"]) | TEXT
    known_redemptions = st.sampled_from([done.redemption_id, "missing"]) | TEXT
    request_ids = st.one_of(st.uuids().map(str), st.sampled_from(["fuzz-1", "fuzz-2"]), TEXT)
    tokens = st.sampled_from(["", "eyJ0IjoieCJ9", "!!!", "e30="]) | TEXT
    seen: list[grpc.StatusCode] = []
    stubs: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {
        "Redeem": suite.stub.Redeem, "GetRedemption": suite.stub.GetRedemption,
        "ListRedemptions": suite.stub.ListRedemptions, "ListEntitlements": suite.stub.ListEntitlements,
        "RefundRedemption": suite.stub.RefundRedemption, "PrepareRaffleDraw": suite.stub.PrepareRaffleDraw,
        "DrawRaffle": suite.stub.DrawRaffle, "GetRaffleDraw": suite.stub.GetRaffleDraw,
        "ConsumeEntitlement": suite.stub.ConsumeEntitlement, "GetEntitlement": suite.stub.GetEntitlement}
    granted = done.entitlement_ids[0]
    targets: st.SearchStrategy[dict[str, str]] = st.one_of(
        st.just({}), st.sampled_from([granted, "missing"]).map(lambda e: {"entitlement_id": e}),
        TEXT.map(lambda e: {"entitlement_id": e}), TEXT.map(lambda c: {"discount_code": c}))

    def call(method: str, request: Any, caller: str = "admin") -> None:
        # An `app` call acts for the user its request names when that id fits in a header; else for
        # another user, and then USER_SCOPE_MISMATCH (PERMISSION_DENIED) is the right answer.
        named = getattr(request, "user_id", "")
        user = (named if fits_header(named) else "fuzz-user") if caller == "app" else ""
        allowed = ALLOWED | ({grpc.StatusCode.PERMISSION_DENIED} if user and user != named else set())
        metadata = acting_for(md(caller), user) if user else md(caller)

        code = on_loop(loop, status_of(lambda: stubs[method](request, metadata=metadata, timeout=20)))
        seen.append(code)
        assert code in allowed, (method, request, code)

    fuzz = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)

    @fuzz
    @given(request_id=request_ids, user_id=st.just(user) | TEXT, item_id=known_items,
           quantity=INT64 | st.integers(-1, 3), region=REGION, recipient=st.just("") | TEXT)
    def redeem(request_id: str, user_id: str, item_id: str, quantity: int, region: str, recipient: str) -> None:
        call("Redeem", pb.RedeemRequest(request_id=request_id, user_id=user_id, item_id=item_id, quantity=quantity,
                                        region=region, recipient_id=recipient), "app")

    @fuzz
    @given(redemption_id=known_redemptions, user_id=st.just(user) | TEXT, size=INT32, token=tokens)
    def reads(redemption_id: str, user_id: str, size: int, token: str) -> None:
        call("GetRedemption", pb.GetRedemptionRequest(redemption_id=redemption_id))
        call("ListRedemptions", pb.ListRedemptionsRequest(user_id=user_id, page_size=size, page_token=token))
        call("ListEntitlements", pb.ListEntitlementsRequest(user_id=user_id, page_size=size, page_token=token))

    @fuzz
    @given(request_id=request_ids, redemption_id=known_redemptions, reason=TEXT | st.text(min_size=501))
    def refund(request_id: str, redemption_id: str, reason: str) -> None:
        call("RefundRedemption", pb.RefundRedemptionRequest(request_id=request_id, redemption_id=redemption_id,
                                                            reason=reason))

    @fuzz
    @given(request_id=request_ids, raffle_id=st.sampled_from(["no-raffle"]) | TEXT)
    def raffles(request_id: str, raffle_id: str) -> None:
        call("PrepareRaffleDraw", pb.PrepareRaffleDrawRequest(request_id=request_id, raffle_id=raffle_id))
        call("DrawRaffle", pb.DrawRaffleRequest(request_id=request_id + "d", raffle_id=raffle_id))
        call("GetRaffleDraw", pb.GetRaffleDrawRequest(raffle_id=raffle_id))

    @fuzz
    @given(request_id=request_ids, target=targets, reference=TEXT | st.text(min_size=201))
    def entitlements(request_id: str, target: dict[str, str], reference: str) -> None:
        call("ConsumeEntitlement", pb.ConsumeEntitlementRequest(request_id=request_id, reference=reference, **target),
             "fulfilment")
        call("GetEntitlement", pb.GetEntitlementRequest(**target))

    for test in (redeem, reads, refund, raffles, entitlements):
        await asyncio.to_thread(test)
    assert grpc.StatusCode.OK in seen and grpc.StatusCode.INVALID_ARGUMENT in seen
