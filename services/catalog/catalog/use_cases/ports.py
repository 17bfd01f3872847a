"""What the use cases need from storage and the transport, as Protocols: the store and the api implement them.

A use case that writes runs inside a unit of work it is handed (the platform's transaction, opaque
here: `UnitOfWork`) and reaches the repositories on it through `Database.on`. Reads run in one of
their own (`Database.run`). The hot path runs single autocommit statements that write the
idempotency key in the same statement as the effect (`Database.hot`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from catalog.domain import Campaign, Item, ItemKind, Reservation, ReservationState, Stock, StockEvent
from catalog.use_cases.commands import RequestKey

T = TypeVar("T")

# The reply message a reservation RPC answers, as stored bytes: (method short name, reservation) -> bytes.
ReservationReply = Callable[[str, Reservation], bytes]


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
    claimed: bool  # the request's key is taken: the general path replays or refuses it


@dataclass(frozen=True)
class Remembered:
    """What a process keeps in memory of one item: its spec and the campaigns linked to it, or that
    there is no such item. The stock counters are as of the load: fresh only for unlimited items,
    whose counters never move."""

    item: Item | None
    campaigns: tuple[Campaign, ...]


@dataclass(frozen=True)
class ReservationRead:
    reservation: Reservation
    claimed: bool


class UnitOfWork(Protocol):
    """One open transaction (`points_platform.unit_of_work.Transaction`); only the store looks inside."""


class ItemStore(Protocol):
    async def insert_item(self, item: Item) -> None: ...

    async def get_item(self, item_id: str, *, for_update: bool = False) -> Item | None: ...

    async def replace_item(self, item: Item, expected_version: int) -> bool: ...

    async def list_items(self, where: ItemFilter, after: tuple[datetime, str] | None, limit: int) -> list[Item]: ...

    async def take_stock(self, item_id: str, quantity: int) -> Stock | None:
        """available -> reserved under the row's lock: the counters after, or None if too few are free."""
        ...

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


class EventStore(Protocol):
    async def append(self, events: Sequence[StockEvent], occurred_time: datetime) -> None:
        """Add `events` to the outbox in this unit of work: published once it commits, never if it
        rolls back. Call it after the stock UPDATE, whose row lock orders one item's events."""
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


class Repositories(Protocol):
    """The repositories of one unit of work: committed when it ends normally, rolled back otherwise."""

    @property
    def items(self) -> ItemStore: ...

    @property
    def campaigns(self) -> CampaignStore: ...

    @property
    def reservations(self) -> ReservationStore: ...

    @property
    def events(self) -> EventStore: ...

    async def reads(self) -> ItemReads:
        """The item reads on this unit of work's own raw connection, inside its transaction."""
        ...


class HotStatements(ItemReads, Protocol):
    """Single autocommit statements of the hot use cases on one connection.

    A mutation writes its effect, the request's key and its reply in one statement; it returns
    False when a guard no longer held or the key was taken meanwhile: nothing was written and the
    caller runs the general path, which decides exactly (and replays a taken key).
    """

    async def read_item_and_claim(self, item_id: str, key: RequestKey) -> ItemRead | None: ...

    async def reserve(self, reservation: Reservation, key: RequestKey, reply: bytes, *, low_threshold: int) -> bool:
        """For a limited item the guard also fails when the units taken would cross `low_threshold`
        or reach zero: the general path then takes them and appends the event in its transaction."""
        ...

    async def read_reservation_and_claim(self, reservation_id: str, key: RequestKey) -> ReservationRead | None: ...

    async def resolve(self, resolved: Reservation, key: RequestKey, reply: bytes) -> bool: ...


class QuoteReads(ItemReads, Protocol):
    """A Quote's reads: each one statement on its own (autocommit, no transaction), on a connection
    of the read pool."""

    async def counts(self, item_id: str, version: int, user_id: str, since: datetime | None, now: datetime, *,
                     stock: bool, used: bool) -> tuple[Stock | None, int] | None:
        """In one statement, what a quote reads fresh: the stock counters (`stock`; else None) and the
        units the user used against the limit (`used`, as `units_used`; else 0). None when the item
        is no longer at `version` (or gone)."""
        ...


class CatalogMemory(Protocol):
    """Items and campaigns kept in this process, never older than a change already acknowledged."""

    def recall(self, item_id: str) -> Remembered | None:
        """What memory holds of the item; None when it holds nothing (or may not serve from memory now)."""
        ...

    async def load(self, item_id: str, reads: ItemReads) -> Remembered:
        """The item and its campaigns read now, kept unless a change was announced meanwhile."""
        ...

    async def settled(self) -> None:
        """Returns once every process serving from memory has dropped what the changes committed so
        far replaced: a change is acknowledged to its caller only after it."""
        ...


class Database(Protocol):
    def on(self, uow: UnitOfWork) -> Repositories: ...

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """`work` in a unit of work of its own, run again on a serialization failure or deadlock."""
        ...

    def hot(self) -> AbstractAsyncContextManager[HotStatements]: ...

    def quote_reads(self) -> QuoteReads: ...
