"""The pure rules of entitlement use and expiry (redemption.domain): no database, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redemption.domain.entitlements import (
    EntitlementKind,
    EntitlementState,
    Usage,
    expiry,
    granted_uses,
    refund_blocker,
)
from redemption.domain.item import ItemKind, ItemSnapshot

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ACTIVE = EntitlementState.ACTIVE


def usage(max_uses: int = 1, use_count: int = 0, *, unlimited: bool = False, expires: datetime | None = None,
          state: EntitlementState = ACTIVE, kind: EntitlementKind = EntitlementKind.DISCOUNT_CODE) -> Usage:
    return Usage(kind, state, max_uses, unlimited, use_count, expires)


def test_expiry_is_the_earlier_of_the_absolute_end_and_the_duration() -> None:
    item = ItemSnapshot(ItemKind.EVENT_ACCESS, "POINTS", valid_until=NOW + timedelta(hours=2), valid_for_seconds=3600)
    assert expiry(item, NOW) == NOW + timedelta(hours=1)
    assert expiry(item, NOW + timedelta(hours=1, minutes=30)) == NOW + timedelta(hours=2)
    assert expiry(ItemSnapshot(ItemKind.COSMETIC, "POINTS"), NOW) is None


def test_an_entitlement_is_expired_from_its_expire_time_on() -> None:
    u = usage(expires=NOW)
    assert u.state_at(NOW - timedelta(microseconds=1)) is ACTIVE
    assert u.state_at(NOW) is EntitlementState.EXPIRED
    assert usage(state=EntitlementState.CONSUMED, use_count=1, expires=NOW).state_at(NOW) is EntitlementState.CONSUMED


def test_consume_refusals_in_order() -> None:
    assert usage(state=EntitlementState.REVOKED).consume_refusal(NOW, True) == "ENTITLEMENT_REVOKED"
    assert usage(0, kind=EntitlementKind.RAFFLE_TICKET).consume_refusal(NOW, True) == "ENTITLEMENT_NOT_CONSUMABLE"
    assert usage(1, 1, state=EntitlementState.CONSUMED, expires=NOW).consume_refusal(NOW, True) == \
        "ENTITLEMENT_CONSUMED"
    assert usage(expires=NOW).consume_refusal(NOW, True) == "ENTITLEMENT_EXPIRED"
    assert usage().consume_refusal(NOW, False) == "REDEMPTION_NOT_COMPLETED"
    assert usage().consume_refusal(NOW, True) == ""


def test_the_last_use_consumes_and_unlimited_never_does() -> None:
    second = usage(2).after_use()
    assert (second.use_count, second.state) == (1, ACTIVE)
    assert second.after_use().state is EntitlementState.CONSUMED
    assert usage(0, 41, unlimited=True).after_use() == usage(0, 42, unlimited=True)


def test_refund_is_blocked_by_any_use_or_an_expiry() -> None:
    assert refund_blocker([usage(), usage(3, 1)], NOW) == "ENTITLEMENT_CONSUMED"
    assert refund_blocker([usage(expires=NOW)], NOW) == "ENTITLEMENT_EXPIRED"
    assert refund_blocker([usage(expires=NOW + timedelta(seconds=1)), usage(0, unlimited=True)], NOW) == ""


def test_sagas_stored_before_terms_get_the_kinds_default() -> None:
    legacy = ItemSnapshot(ItemKind.PREMIUM_DISCOUNT, "POINTS")
    assert granted_uses(legacy, EntitlementKind.DISCOUNT_CODE) == (1, False)
    assert granted_uses(ItemSnapshot(ItemKind.COSMETIC, "POINTS"), EntitlementKind.COSMETIC) == (0, True)
    assert granted_uses(ItemSnapshot(ItemKind.RAFFLE_TICKET, "POINTS"), EntitlementKind.RAFFLE_TICKET) == (0, False)
    assert granted_uses(ItemSnapshot(ItemKind.PREMIUM_DISCOUNT, "POINTS", max_uses=4),
                        EntitlementKind.DISCOUNT_CODE) == (4, False)
