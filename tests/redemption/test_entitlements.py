"""Using entitlements: ConsumeEntitlement by id or code, uses and expiry from the item's terms at grant,
GetEntitlement, refunds refused once used or expired, who may do what, and bad input."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from sqlalchemy import func, select

from points.catalog.v1 import catalog_pb2
from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as rpb
from points_platform.client import acting_for, error_reason
from redemption.store.tables import entitlement_uses
from tests.redemption.conftest import POINTS, Suite, cosmetic_spec, md, uid
from tests.support.rpc import expect_error, ts

FP = grpc.StatusCode.FAILED_PRECONDITION
RACERS = 20
REFUSED = "FAILED_PRECONDITION ENTITLEMENT_CONSUMED"


def discount_spec(**terms: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "kind": catalog_pb2.ITEM_KIND_PREMIUM_DISCOUNT, "price": common_pb2.Price(currency=POINTS, amount=10),
        "discount": catalog_pb2.DiscountAttributes(percent_off_bps=2000, target_feature="ad_free_month")}
    if terms:
        spec["entitlement_terms"] = catalog_pb2.EntitlementTerms(**terms)  # type: ignore[arg-type]
    return spec


def event_spec(**terms: object) -> dict[str, object]:
    return {"kind": catalog_pb2.ITEM_KIND_EVENT_ACCESS, "price": common_pb2.Price(currency=POINTS, amount=10),
            "event_access": catalog_pb2.EventAccessAttributes(event_id="live-final"),
            "entitlement_terms": catalog_pb2.EntitlementTerms(**terms)}  # type: ignore[arg-type]


async def granted(suite: Suite, spec: dict[str, object], user: str | None = None) -> tuple[rpb.Redemption,
                                                                                           rpb.Entitlement]:
    """A completed redemption of a new item made from `spec`, and its (first) entitlement."""
    user = user or uid("ent")
    await suite.fund(user, 1_000)
    item = await suite.item(**spec)
    redemption = await suite.redeem(user, item.item_id)
    assert redemption.state == rpb.REDEMPTION_STATE_COMPLETED, redemption
    return redemption, await get(suite, entitlement_id=redemption.entitlement_ids[0])


async def get(suite: Suite, caller: str = "admin", **target: str) -> rpb.Entitlement:
    reply = await suite.stub.GetEntitlement(rpb.GetEntitlementRequest(**target), metadata=md(caller))
    return reply.entitlement


def consume(suite: Suite, caller: str = "fulfilment", request_id: str | None = None, reference: str = "order-1",
            **target: str) -> asyncio.Future[rpb.ConsumeEntitlementResponse]:
    request = rpb.ConsumeEntitlementRequest(request_id=request_id or uid("use"), reference=reference, **target)
    return suite.stub.ConsumeEntitlement(request, metadata=md(caller))  # type: ignore[return-value]


async def refund(suite: Suite, redemption: rpb.Redemption) -> rpb.Redemption:
    reply = await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
        request_id=uid("refund"), redemption_id=redemption.redemption_id, reason="changed mind"), metadata=md("admin"))
    return reply.redemption


async def test_a_discount_code_is_used_once_then_refused(suite: Suite) -> None:
    _, code = await granted(suite, discount_spec())
    assert code.kind == rpb.ENTITLEMENT_KIND_DISCOUNT_CODE and code.state == rpb.ENTITLEMENT_STATE_ACTIVE
    assert (code.max_uses, code.unlimited_uses, code.use_count) == (1, False, 0)
    request_id = uid("use")
    first = await consume(suite, request_id=request_id, reference="order-42", discount_code=code.discount_code)
    assert first.entitlement.state == rpb.ENTITLEMENT_STATE_CONSUMED and first.entitlement.use_count == 1
    assert (first.use.caller, first.use.reference, first.use.use_number, first.use.request_id) == (
        "fulfilment", "order-42", 1, request_id)
    assert first.use.use_time == ts(suite.clock.now())
    # A replay answers as the first time; the same key with another body is refused.
    assert await consume(suite, request_id=request_id, reference="order-42", discount_code=code.discount_code) == first
    await expect_error(consume(suite, request_id=request_id, reference="order-43", discount_code=code.discount_code),
                       grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    await expect_error(consume(suite, discount_code=code.discount_code), FP, "ENTITLEMENT_CONSUMED")
    by_code = await suite.stub.GetEntitlement(rpb.GetEntitlementRequest(discount_code=code.discount_code),
                                              metadata=md("fulfilment"))
    assert by_code.entitlement.entitlement_id == code.entitlement_id
    assert by_code.entitlement.state == rpb.ENTITLEMENT_STATE_CONSUMED
    assert list(by_code.uses) == [first.use]


async def test_codes_are_unguessable_and_distinct(suite: Suite) -> None:
    user = uid("codes")
    await suite.fund(user, 1_000)
    item = await suite.item(**discount_spec())
    redemption = await suite.redeem(user, item.item_id, quantity=10)
    codes = [(await get(suite, entitlement_id=e)).discount_code for e in redemption.entitlement_ids]
    assert len(set(codes)) == 10
    assert all(len(c) >= 22 for c in codes)  # secrets.token_urlsafe(16): 128 random bits


async def _race(suite: Suite, **target: str) -> list[str | rpb.ConsumeEntitlementResponse]:
    """RACERS consumers with distinct request ids, released together by a barrier: each one's answer, or
    its status and ErrorInfo reason."""
    barrier = asyncio.Barrier(RACERS)

    async def racer(n: int) -> str | rpb.ConsumeEntitlementResponse:
        await barrier.wait()
        try:
            return await consume(suite, request_id=uid(f"racer-{n}"), reference=f"order-{n}", **target)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name} {error_reason(exc)}"

    return await asyncio.gather(*(racer(n) for n in range(RACERS)))


async def _uses_stored(suite: Suite, entitlement_id: str) -> int:
    async with suite.redemption.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(entitlement_uses).where(
            entitlement_uses.c.entitlement_id == entitlement_id))).scalar_one())


async def test_twenty_racers_on_a_single_use_code_consume_it_once(suite: Suite) -> None:
    """Fails without the row lock: the racers would all read use_count 0 and every one would be let through
    (or collide on the use record's unique key and answer INTERNAL)."""
    _, code = await granted(suite, discount_spec())
    results = await _race(suite, discount_code=code.discount_code)
    winners = [r for r in results if isinstance(r, rpb.ConsumeEntitlementResponse)]
    assert len(winners) == 1 and results.count(REFUSED) == RACERS - 1, results
    assert winners[0].entitlement.state == rpb.ENTITLEMENT_STATE_CONSUMED
    assert await _uses_stored(suite, code.entitlement_id) == 1


async def test_twenty_racers_on_a_three_use_pass_consume_it_three_times(suite: Suite) -> None:
    _, pass_ = await granted(suite, event_spec(max_uses=3))
    results = await _race(suite, entitlement_id=pass_.entitlement_id)
    winners = [r for r in results if isinstance(r, rpb.ConsumeEntitlementResponse)]
    assert len(winners) == 3 and results.count(REFUSED) == RACERS - 3, results
    assert sorted(w.use.use_number for w in winners) == [1, 2, 3]
    after = await get(suite, entitlement_id=pass_.entitlement_id)
    assert (after.state, after.use_count) == (rpb.ENTITLEMENT_STATE_CONSUMED, 3)
    assert await _uses_stored(suite, pass_.entitlement_id) == 3


async def test_racers_with_one_request_id_make_one_use_and_share_its_answer(suite: Suite) -> None:
    _, pass_ = await granted(suite, event_spec(max_uses=5))
    barrier = asyncio.Barrier(10)
    request_id = uid("same")

    async def racer() -> rpb.ConsumeEntitlementResponse:
        await barrier.wait()
        return await consume(suite, request_id=request_id, entitlement_id=pass_.entitlement_id)

    answers = await asyncio.gather(*(racer() for _ in range(10)))
    assert all(a == answers[0] for a in answers) and answers[0].use.use_number == 1
    assert await _uses_stored(suite, pass_.entitlement_id) == 1


async def test_a_code_expires_after_its_duration_from_grant(suite: Suite) -> None:
    redemption, code = await granted(suite, discount_spec(max_uses=2, valid_for_seconds=3600))
    assert code.expire_time == ts(code.create_time.ToDatetime() + timedelta(hours=1))
    suite.clock.advance(3599)
    assert (await get(suite, entitlement_id=code.entitlement_id)).state == rpb.ENTITLEMENT_STATE_ACTIVE
    used = await consume(suite, entitlement_id=code.entitlement_id)
    assert used.entitlement.state == rpb.ENTITLEMENT_STATE_ACTIVE and used.entitlement.use_count == 1
    suite.clock.advance(1)
    assert (await get(suite, entitlement_id=code.entitlement_id)).state == rpb.ENTITLEMENT_STATE_EXPIRED
    listed = {e.entitlement_id: e for e in await suite.entitlements(redemption.user_id)}
    assert listed[code.entitlement_id].state == rpb.ENTITLEMENT_STATE_EXPIRED
    await expect_error(consume(suite, entitlement_id=code.entitlement_id), FP, "ENTITLEMENT_EXPIRED")


async def test_an_event_pass_expires_at_the_events_end(suite: Suite) -> None:
    ends = suite.clock.now() + timedelta(hours=2)
    redemption, pass_ = await granted(suite, event_spec(max_uses=1, valid_until=ts(ends), valid_for_seconds=86400))
    assert pass_.expire_time == ts(ends)  # the earlier of the two ends
    suite.clock.set(ends)
    assert (await get(suite, entitlement_id=pass_.entitlement_id)).state == rpb.ENTITLEMENT_STATE_EXPIRED
    await expect_error(consume(suite, entitlement_id=pass_.entitlement_id), FP, "ENTITLEMENT_EXPIRED")
    await expect_error(refund(suite, redemption), FP, "ENTITLEMENT_EXPIRED")


async def test_terms_are_those_of_the_item_at_grant(suite: Suite) -> None:
    user = uid("terms")
    await suite.fund(user, 1_000)
    item = await suite.item(**discount_spec())
    before = await suite.redeem(user, item.item_id)
    await suite.catalog_stub.UpdateItem(catalog_pb2.UpdateItemRequest(
        request_id=uid("upd"), item_id=item.item_id, expected_version=item.version,
        spec=catalog_pb2.ItemSpec(title="item", **discount_spec(max_uses=5))), metadata=md("admin"))  # type: ignore[arg-type]
    after = await suite.redeem(user, item.item_id)
    assert (await get(suite, entitlement_id=before.entitlement_ids[0])).max_uses == 1
    assert (await get(suite, entitlement_id=after.entitlement_ids[0])).max_uses == 5


async def test_unlimited_cosmetics_stay_active_and_tickets_are_not_consumable(suite: Suite) -> None:
    _, cosmetic = await granted(suite, cosmetic_spec())
    assert cosmetic.unlimited_uses
    for n in range(3):
        used = await consume(suite, entitlement_id=cosmetic.entitlement_id)
        assert used.entitlement.state == rpb.ENTITLEMENT_STATE_ACTIVE and used.use.use_number == n + 1
    _, ticket = await granted(suite, {
        "kind": catalog_pb2.ITEM_KIND_RAFFLE_TICKET, "price": common_pb2.Price(currency=POINTS, amount=1),
        "raffle": catalog_pb2.RaffleAttributes(raffle_id=uid("raffle"), winners=1)})
    await expect_error(consume(suite, entitlement_id=ticket.entitlement_id), FP, "ENTITLEMENT_NOT_CONSUMABLE")


async def test_refund_is_refused_once_used_even_partly_and_revokes_an_unused_one(suite: Suite) -> None:
    used, code = await granted(suite, discount_spec(max_uses=3))
    await consume(suite, entitlement_id=code.entitlement_id)
    await expect_error(refund(suite, used), FP, "ENTITLEMENT_CONSUMED")
    unused, other = await granted(suite, discount_spec())
    assert (await refund(suite, unused)).state == rpb.REDEMPTION_STATE_REFUNDED
    assert (await get(suite, entitlement_id=other.entitlement_id)).state == rpb.ENTITLEMENT_STATE_REVOKED
    await expect_error(consume(suite, discount_code=other.discount_code), FP, "ENTITLEMENT_REVOKED")


async def test_refund_is_refused_once_expired_unused(suite: Suite) -> None:
    redemption, _ = await granted(suite, discount_spec(max_uses=1, valid_for_seconds=60))
    suite.clock.advance(60)
    await expect_error(refund(suite, redemption), FP, "ENTITLEMENT_EXPIRED")


async def test_who_may_use_and_read_entitlements(suite: Suite) -> None:
    redemption, code = await granted(suite, discount_spec())
    owner = redemption.user_id
    for caller in ("app", "earning", "redemption", "payments"):
        await expect_error(consume(suite, caller, entitlement_id=code.entitlement_id),
                           grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    app_get = suite.stub.GetEntitlement
    mine = await app_get(rpb.GetEntitlementRequest(discount_code=code.discount_code),
                         metadata=acting_for(md("app"), owner))
    assert mine.entitlement.entitlement_id == code.entitlement_id
    for target in ({"entitlement_id": code.entitlement_id}, {"discount_code": code.discount_code}):
        await expect_error(app_get(rpb.GetEntitlementRequest(**target), metadata=acting_for(md("app"), "someone-else")),
                           grpc.StatusCode.NOT_FOUND, "ENTITLEMENT_NOT_FOUND")
    await expect_error(app_get(rpb.GetEntitlementRequest(entitlement_id=code.entitlement_id), metadata=md("app")),
                       grpc.StatusCode.PERMISSION_DENIED, "USER_REQUIRED")
    assert (await consume(suite, "admin", entitlement_id=code.entitlement_id)).use.caller == "admin"


async def test_bad_input_is_refused_with_reasons(suite: Suite) -> None:
    bad = grpc.StatusCode.INVALID_ARGUMENT
    await expect_error(consume(suite), bad, "ENTITLEMENT_REQUIRED")
    await expect_error(consume(suite, entitlement_id="has space"), bad, "INVALID_FIELD")
    await expect_error(consume(suite, discount_code="no/slash"), bad, "INVALID_FIELD")
    await expect_error(consume(suite, reference="x" * 201, entitlement_id="e1"), bad, "INVALID_FIELD")
    await expect_error(suite.stub.ConsumeEntitlement(rpb.ConsumeEntitlementRequest(entitlement_id="e1"),
                                                     metadata=md("fulfilment")), bad, "INVALID_FIELD")
    await expect_error(suite.stub.GetEntitlement(rpb.GetEntitlementRequest(), metadata=md("admin")), bad,
                       "ENTITLEMENT_REQUIRED")
    await expect_error(consume(suite, discount_code="NoSuchCode"), grpc.StatusCode.NOT_FOUND, "ENTITLEMENT_NOT_FOUND")
    await expect_error(get(suite, entitlement_id="missing"), grpc.StatusCode.NOT_FOUND, "ENTITLEMENT_NOT_FOUND")
