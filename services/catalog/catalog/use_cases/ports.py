"""What the use cases need from storage, as Protocols: the store implements them.

The use cases see a `Database` that opens a `Transaction` (the unit of work: one repository per
aggregate, all on one transaction), a read-only connection, or the hot statements (single
autocommit statements that chain the effect to the idempotency claim), and that retries a
transaction that lost a serialization race or a deadlock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from catalog.domain import Campaign, Item, ItemKind, Reservation, ReservationState, StockReturn

T = TypeVar("T")
# What a mutating use case answers, kept for replays.
AnyReply = Item | Campaign | Reservation | StockReturn
Reply = TypeVar("Reply", bound=AnyReply)


@dataclass(frozen=True)
class StoredReply(Generic[Reply]):
    """What an earlier call with the same request id left: its fingerprint and its reply.

    The claim and the reply are written in one transaction (or one statement), so a claim that
    another call can see always holds its reply.
    """

    fingerprint: str
    reply: Reply


@dataclass(frozen=True)
class ItemFilter:
    region: str
    kind: ItemKind | None
    available_at: datetime | None
    campaign_id: str
    include_archived: bool


@dataclass(frozen=True)
class Expired:
    reservation_id: str
    item_id: str
    quantity: int
    took_stock: bool


@dataclass(frozen=True)
class ItemRead:
    item: Item
    campaign_links: int  # grows with every campaign linked or ended: the campaigns cache key
    claim: StoredReply[Reservation] | None


@dataclass(frozen=True)
class ReservationRead:
    reservation: Reservation
    claim: StoredReply[Reservation] | None


class RequestLog(Protocol):
    """Idempotency keys of mutating calls, with the reply each produced."""

    async def claim(
        self, method: str, request_id: str, fingerprint: str, now: datetime, kind: type[Reply]
    ) -> StoredReply[Reply] | None:
        """Claim the key (None), or what an earlier call with it stored; waits for a concurrent claimer."""
        ...

    async def save_reply(self, method: str, request_id: str, reply: AnyReply) -> None:
        ...


class ItemStore(Protocol):
    async def insert_item(self, item: Item) -> None: ...

    async def get_item(self, item_id: str, *, for_update: bool = False) -> Item | None: ...

    async def replace_item(self, item: Item, expected_version: int) -> bool: ...

    async def list_items(self, where: ItemFilter, after: tuple[datetime, str] | None, limit: int) -> list[Item]: ...

    async def take_stock(self, item_id: str, quantity: int) -> int | None: ...

    async def settle_stock(self, item_id: str, quantity: int, *, sold: bool) -> None: ...

    async def unsell_stock(self, item_id: str, quantity: int) -> bool: ...


class CampaignStore(Protocol):
    async def insert_campaign(self, campaign: Campaign) -> None: ...

    async def get_campaign(self, campaign_id: str, *, for_update: bool = False) -> Campaign | None: ...

    async def set_campaign_ended(self, campaign_id: str, ended_time: datetime) -> None: ...

    async def list_campaigns(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Campaign]: ...


class ReservationStore(Protocol):
    async def lock_user_item(self, item_id: str, user_id: str) -> None: ...

    async def insert_reservation(self, reservation: Reservation) -> None: ...

    async def get_reservation(self, reservation_id: str, *, for_update: bool = False) -> Reservation | None: ...

    async def resolve_reservation(self, reservation_id: str, state: ReservationState, now: datetime) -> None: ...

    async def add_returned(self, reservation_id: str, quantity: int) -> None: ...

    async def expire_due(self, now: datetime, limit: int, item_id: str | None = None) -> list[Expired]: ...


class Transaction(Protocol):
    """The repositories of one transaction: committed when its block ends normally, rolled back otherwise."""

    @property
    def requests(self) -> RequestLog: ...

    @property
    def items(self) -> ItemStore: ...

    @property
    def campaigns(self) -> CampaignStore: ...

    @property
    def reservations(self) -> ReservationStore: ...

    async def reads(self) -> ItemReads:
        """The item reads on this transaction's connection (after its first statement)."""
        ...


class ItemReads(Protocol):
    """The reads pricing and the per-user limit rest on, the same on the hot and the general path."""

    async def read_item(self, item_id: str) -> tuple[Item, int] | None:
        """The item and its number of campaign links (the key `campaigns` caches by)."""
        ...

    async def campaigns(self, item_id: str, links: int) -> list[Campaign]:
        """Every campaign linked to the item, whatever its window and regions (`domain.applies` decides)."""
        ...

    async def units_used(self, item_id: str, user_id: str, since: datetime | None, now: datetime) -> int:
        """Units counted against the limit: committed minus returned, plus active ones not yet expired."""
        ...


class HotStatements(ItemReads, Protocol):
    """Single autocommit statements of the hot use cases on one connection.

    A mutation returns False when a guard no longer held or the key was taken meanwhile: nothing
    was written and the caller runs the general transactional path, which decides exactly.
    """

    async def read_item_and_claim(self, item_id: str, method: str, request_id: str) -> ItemRead | None: ...

    async def reserve(self, reservation: Reservation, request_id: str, fingerprint: str) -> bool: ...

    async def read_reservation_and_claim(
        self, reservation_id: str, method: str, request_id: str
    ) -> ReservationRead | None: ...

    async def resolve(self, method: str, resolved: Reservation, request_id: str, fingerprint: str) -> bool: ...


class Database(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    def reading(self) -> AbstractAsyncContextManager[Transaction]:
        """Repositories for reads only (nothing written here is kept)."""
        ...

    def hot(self) -> AbstractAsyncContextManager[HotStatements]: ...

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` (which opens its own transaction) again after a serialization failure or deadlock."""
        ...
