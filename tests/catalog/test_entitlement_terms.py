"""Entitlement terms of items: the kind's defaults, validation with reasons, versioning, and an item whose
entitlements would be expired on arrival is no longer sold."""

from __future__ import annotations

from datetime import timedelta

import grpc

from points.catalog.v1 import catalog_pb2 as pb
from tests.catalog.conftest import START, Harness, item_spec, rid
from tests.support.rpc import expect_error, ts

DISCOUNT = {"kind": pb.ITEM_KIND_PREMIUM_DISCOUNT,
            "discount": pb.DiscountAttributes(percent_off_bps=2000, target_feature="ad_free_month")}
EVENT = {"kind": pb.ITEM_KIND_EVENT_ACCESS, "event_access": pb.EventAccessAttributes(event_id="live-1")}


async def test_unset_terms_take_the_kinds_default(h: Harness) -> None:
    code = await h.create_item(**DISCOUNT)
    assert (code.entitlement_terms.max_uses, code.entitlement_terms.unlimited_uses) == (1, False)
    cosmetic = await h.create_item()
    assert (cosmetic.entitlement_terms.max_uses, cosmetic.entitlement_terms.unlimited_uses) == (0, True)
    ticket = await h.create_item(kind=pb.ITEM_KIND_RAFFLE_TICKET, raffle=pb.RaffleAttributes(raffle_id="r", winners=1))
    assert ticket.entitlement_terms == pb.EntitlementTerms()


async def test_terms_are_stored_versioned_and_read_back(h: Harness) -> None:
    ends = START + timedelta(days=2)
    terms = pb.EntitlementTerms(max_uses=3, valid_until=ts(ends), valid_for_seconds=3600)
    item = await h.create_item(entitlement_terms=terms, **DISCOUNT)
    got = (await h.call("GetItem", pb.GetItemRequest(item_id=item.item_id), caller="app")).item
    assert got.entitlement_terms == terms and got.version == 1
    unlimited = pb.EntitlementTerms(unlimited_uses=True)
    v2 = (await h.call("UpdateItem", pb.UpdateItemRequest(
        request_id=rid(), item_id=item.item_id, expected_version=1,
        spec=item_spec(entitlement_terms=unlimited, **DISCOUNT)))).item
    assert v2.version == 2 and v2.entitlement_terms == unlimited


async def test_invalid_terms_are_refused_with_a_reason_and_field(h: Harness) -> None:
    bad = [
        (pb.EntitlementTerms(max_uses=0), DISCOUNT, "spec.entitlement_terms.max_uses"),
        (pb.EntitlementTerms(max_uses=-1), EVENT, "spec.entitlement_terms.max_uses"),
        (pb.EntitlementTerms(max_uses=1_000_001), EVENT, "spec.entitlement_terms.max_uses"),
        (pb.EntitlementTerms(max_uses=2, unlimited_uses=True), {}, "spec.entitlement_terms.max_uses"),
        (pb.EntitlementTerms(max_uses=1, valid_for_seconds=-5), DISCOUNT, "spec.entitlement_terms.valid_for_seconds"),
        (pb.EntitlementTerms(max_uses=1), {"kind": pb.ITEM_KIND_VIRTUAL_GIFT, "gift": pb.GiftAttributes(gift_id="g")},
         "spec.entitlement_terms"),
    ]
    for terms, kind, field in bad:
        error = await expect_error(
            h.call("CreateItem", pb.CreateItemRequest(request_id=rid(), spec=item_spec(entitlement_terms=terms,
                                                                                       **kind))),
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENTITLEMENT_TERMS")
        assert field in (error.details() or "")


async def test_an_item_is_not_sold_once_its_entitlements_would_be_expired(h: Harness) -> None:
    ends = START + timedelta(hours=1)
    item = await h.create_item(entitlement_terms=pb.EntitlementTerms(max_uses=1, valid_until=ts(ends)), **EVENT)
    assert (await h.quote(item.item_id)).redeemable
    h.clock.set(ends)
    quote = await h.quote(item.item_id)
    assert not quote.redeemable and quote.unavailable_reason == "NO_LONGER_AVAILABLE"
