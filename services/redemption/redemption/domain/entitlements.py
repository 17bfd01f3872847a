"""Entitlements: what an item grants, with how many uses and until when; using one; what blocks a refund."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from redemption.domain.item import ItemKind, ItemSnapshot


class EntitlementKind(StrEnum):
    COSMETIC = "COSMETIC"
    EVENT_PASS = "EVENT_PASS"
    DISCOUNT_CODE = "DISCOUNT_CODE"
    RAFFLE_TICKET = "RAFFLE_TICKET"
    GIFT_RECORD = "GIFT_RECORD"


class EntitlementState(StrEnum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"
    CONSUMED = "CONSUMED"
    EXPIRED = "EXPIRED"  # shown, never stored: an ACTIVE entitlement read at or after its expire_time


ENTITLEMENT_OF_ITEM = {
    ItemKind.PREMIUM_DISCOUNT: EntitlementKind.DISCOUNT_CODE,
    ItemKind.VIRTUAL_GIFT: EntitlementKind.GIFT_RECORD,
    ItemKind.RAFFLE_TICKET: EntitlementKind.RAFFLE_TICKET,
    ItemKind.COSMETIC: EntitlementKind.COSMETIC,
    ItemKind.EVENT_ACCESS: EntitlementKind.EVENT_PASS,
}

# Owning a cosmetic or a pass twice means nothing: one entitlement per redemption for those,
# one per unit for tickets, codes and gifts.
ONE_PER_UNIT = frozenset({EntitlementKind.RAFFLE_TICKET, EntitlementKind.DISCOUNT_CODE, EntitlementKind.GIFT_RECORD})


def entitlement_units(kind: EntitlementKind, quantity: int) -> int:
    return quantity if kind in ONE_PER_UNIT else 1



# Uses of entitlements granted from a saga stored before items carried terms: (max_uses, unlimited).
DEFAULT_USES = {
    EntitlementKind.DISCOUNT_CODE: (1, False),
    EntitlementKind.EVENT_PASS: (1, False),
    EntitlementKind.COSMETIC: (0, True),
}


def granted_uses(item: ItemSnapshot, kind: EntitlementKind) -> tuple[int, bool]:
    """(max_uses, unlimited_uses) an entitlement of `item` is granted with."""
    if item.max_uses is None:
        return DEFAULT_USES.get(kind, (0, False))
    return item.max_uses, item.unlimited_uses


def expiry(item: ItemSnapshot, granted_at: datetime) -> datetime | None:
    """When an entitlement granted at `granted_at` expires: the earlier of the item's absolute end and
    its duration from grant; None = never."""
    ends = [item.valid_until] if item.valid_until is not None else []
    if item.valid_for_seconds:
        ends.append(granted_at + timedelta(seconds=item.valid_for_seconds))
    return min(ends, default=None)


@dataclass(frozen=True)
class Usage:
    """What decides whether an entitlement can be used now: its kind, stored state, uses and expiry."""

    kind: EntitlementKind
    state: EntitlementState
    max_uses: int
    unlimited_uses: bool
    use_count: int
    expire_time: datetime | None

    @property
    def is_consumable(self) -> bool:
        """Raffle tickets (the draw consumes them) and gift records (a record) are not used by callers."""
        return self.unlimited_uses or self.max_uses > 0

    def is_expired(self, now: datetime) -> bool:
        """Half-open like every window here: valid strictly before expire_time."""
        return self.expire_time is not None and now >= self.expire_time

    def state_at(self, now: datetime) -> EntitlementState:
        """The state a reader sees: an ACTIVE entitlement past its expiry is EXPIRED (computed from the
        clock at read time, so no sweeper has to have run)."""
        if self.state is EntitlementState.ACTIVE and self.is_expired(now):
            return EntitlementState.EXPIRED
        return self.state

    def consume_refusal(self, now: datetime, redemption_completed: bool) -> str:
        """Why one more use is refused now; "" when it is allowed."""
        if self.state is EntitlementState.REVOKED:
            return "ENTITLEMENT_REVOKED"
        if not self.is_consumable:
            return "ENTITLEMENT_NOT_CONSUMABLE"
        if self.state is EntitlementState.CONSUMED:
            return "ENTITLEMENT_CONSUMED"
        if self.is_expired(now):
            return "ENTITLEMENT_EXPIRED"
        if not redemption_completed:
            # Granted before the funds are committed: the saga may still be compensated and revoke it.
            return "REDEMPTION_NOT_COMPLETED"
        return ""

    def after_use(self) -> Usage:
        """One more use; the last allowed one consumes it."""
        count = self.use_count + 1
        used_up = not self.unlimited_uses and count >= self.max_uses
        return replace(self, use_count=count, state=EntitlementState.CONSUMED if used_up else self.state)


def refund_blocker(usages: list[Usage], now: datetime) -> str:
    """Why a redemption's entitlements make its refund impossible: one used even once (the value was taken)
    or one expired (what was bought has run out); "" when none does."""
    if any(u.use_count > 0 or u.state is EntitlementState.CONSUMED for u in usages):
        return "ENTITLEMENT_CONSUMED"
    if any(u.state is EntitlementState.ACTIVE and u.is_expired(now) for u in usages):
        return "ENTITLEMENT_EXPIRED"
    return ""
