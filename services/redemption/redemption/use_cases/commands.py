"""The commands of the mutating RPCs, built by the api layer from validated requests."""

from __future__ import annotations

from dataclasses import dataclass

from points_platform.idempotency import RequestKey


@dataclass(frozen=True)
class RedeemCommand:
    """`fingerprint` is the request digest the saga row keeps; `key` the platform's idempotency key
    derived from it (points_platform.idempotency), which judges a replay."""

    key: RequestKey
    request_id: str
    fingerprint: str
    user_id: str
    item_id: str
    quantity: int
    region: str
    recipient_id: str


@dataclass(frozen=True)
class RefundCommand:
    key: RequestKey  # as RedeemCommand's; the saga row keeps the refund's digest
    request_id: str
    fingerprint: str
    redemption_id: str
    reason: str


@dataclass(frozen=True)
class ConsumeCommand:
    request_id: str
    fingerprint: str
    entitlement_id: str  # exactly one of entitlement_id / discount_code
    discount_code: str
    caller: str
    reference: str
