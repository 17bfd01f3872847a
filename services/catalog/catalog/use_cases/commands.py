"""Commands the use cases accept: what the transport hands over after edge validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from catalog.domain import CampaignSpec, ItemSpec

E = TypeVar("E")


@dataclass(frozen=True)
class RequestKey:
    """What a mutating request is known by (`points_platform.idempotency.RequestKey`, as the
    transport computed it): the hot path writes it beside its effect, in the platform's table."""

    user_id: str
    request_id: str
    method: str  # full name: points.catalog.v1.CatalogService.ReserveStock
    fingerprint: bytes


@dataclass(frozen=True)
class Idempotent:
    """Every mutating command carries its request's key."""

    key: RequestKey

    @property
    def request_id(self) -> str:
        return self.key.request_id


@dataclass(frozen=True)
class CreateItem(Idempotent):
    spec: ItemSpec


@dataclass(frozen=True)
class UpdateItem(Idempotent):
    item_id: str
    expected_version: int  # 0 = no check
    spec: ItemSpec
    archived: bool


@dataclass(frozen=True)
class CreateCampaign(Idempotent):
    spec: CampaignSpec


@dataclass(frozen=True)
class EndCampaign(Idempotent):
    campaign_id: str


@dataclass(frozen=True)
class ReserveStock(Idempotent):
    item_id: str
    user_id: str
    quantity: int
    region: str
    ttl_seconds: int  # 0 = default


@dataclass(frozen=True)
class ResolveReservation(Idempotent):
    reservation_id: str


@dataclass(frozen=True)
class ReturnStock(Idempotent):
    reservation_id: str
    quantity: int  # 0 = every unit not yet returned


@dataclass(frozen=True)
class Page(Generic[E]):
    entries: list[E]
    next_after: tuple[datetime, str] | None
