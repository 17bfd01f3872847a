"""What the use cases need from outside, as Protocols: the peers (`Catalog`, `Wallet`, implemented over gRPC by
`redemption.peers`) with the values they answer, and the database's repositories (`SagaRepository`,
`EntitlementRepository`, implemented by `redemption.store`) working in the platform unit of work's transactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from points_platform.unit_of_work import Transaction
from redemption.domain.entitlements import Usage
from redemption.domain.item import ItemSnapshot
from redemption.domain.saga import Saga, State, Step
from redemption.use_cases.commands import ConsumeCommand
from redemption.use_cases.records import (
    Consumption,
    EntitlementRow,
    Log,
    RaffleDrawRow,
    SagaRecord,
    Transition,
    UseRow,
    UseRule,
    WinnerPick,
)

# -- peers ------------------------------------------------------------------------------------


class PeerRefusedError(Exception):
    """The peer refused for a business reason (INSUFFICIENT_FUNDS, OUT_OF_STOCK, HOLD_EXPIRED...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerUnavailableError(Exception):
    """Transient: unreachable, deadline, aborted, crashed mid-call. Retrying the same request is safe."""


@dataclass(frozen=True)
class ItemInfo:
    snapshot: ItemSnapshot
    draw_time: datetime | None = None
    winners: int = 0
    version: int = 0
    limited_stock: bool = True


@dataclass(frozen=True)
class QuoteInfo:
    redeemable: bool
    reason: str
    currency: str
    amount: int
    stock_remaining: int = -1  # -1 = unlimited stock
    user_remaining_allowance: int = -1  # -1 = no per-user limit
    item_version: int = 0

    @property
    def locks_nothing(self) -> bool:
        """Unlimited stock and no per-user limit: a reservation would lock no unit and no allowance."""
        return self.stock_remaining == -1 and self.user_remaining_allowance == -1


@dataclass(frozen=True)
class ReservationInfo:
    reservation_id: str
    state: str  # ACTIVE, COMMITTED, RELEASED, EXPIRED
    currency: str
    amount: int
    expire_time: datetime | None
    returned_quantity: int = 0
    item_version: int = 0


@dataclass(frozen=True)
class HoldInfo:
    hold_id: str
    state: str  # ACTIVE, COMMITTED, RELEASED, EXPIRED


class Catalog(Protocol):
    async def item(self, item_id: str) -> ItemInfo: ...
    async def raffle_item(self, raffle_id: str) -> ItemInfo | None: ...
    async def quote(self, item_id: str, user_id: str, region: str, quantity: int) -> QuoteInfo: ...
    async def reserve(self, request_id: str, item_id: str, user_id: str, quantity: int, region: str,
                      ttl_seconds: int) -> ReservationInfo: ...
    async def commit(self, request_id: str, reservation_id: str) -> ReservationInfo: ...
    async def release(self, request_id: str, reservation_id: str) -> ReservationInfo: ...
    async def return_stock(self, request_id: str, reservation_id: str, quantity: int) -> ReservationInfo: ...
    async def reservation(self, reservation_id: str) -> ReservationInfo: ...


class Wallet(Protocol):
    async def available(self, user_id: str, currency: str) -> int: ...
    async def reserve(self, request_id: str, user_id: str, currency: str, amount: int, ttl_seconds: int,
                      reference: str) -> HoldInfo: ...
    async def commit(self, request_id: str, hold_id: str, reason: str) -> HoldInfo: ...
    async def release(self, request_id: str, hold_id: str) -> HoldInfo: ...
    async def hold(self, hold_id: str) -> HoldInfo: ...
    async def send_gift(self, request_id: str, sender_id: str, creator_id: str, coins: int, gift_id: str) -> None: ...
    async def refund_hold(self, request_id: str, hold_id: str, amount: int, reason: str) -> HoldInfo: ...
    async def credit(self, request_id: str, user_id: str, currency: str, amount: int, reason: str,
                     reference: str) -> None: ...


# -- the database -----------------------------------------------------------------------------


class SagaRepository(Protocol):
    async def create(self, saga: Saga, request_id: str, fingerprint: str, now: datetime, owner: str,
                     lease_until: datetime, logs: Sequence[Log] = ()) -> tuple[SagaRecord, bool]: ...
    async def get(self, redemption_id: str, *, with_steps: bool = False) -> SagaRecord | None: ...
    async def by_request_id(self, request_id: str) -> SagaRecord | None: ...
    async def transition(self, move: Transition, *, owner: str, lease_seconds: float,
                         tx: Transaction | None = None) -> bool: ...
    async def note_retry(self, saga: Saga, step: Step, detail: str, *, owner: str, now: datetime,
                         retry_at: datetime, release: bool) -> None: ...
    async def acquire(self, redemption_id: str, owner: str, now: datetime, lease_seconds: float) -> bool: ...
    async def claim_due(self, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[str]: ...
    async def count_pending(self) -> dict[str, int]: ...
    async def list_for_user(self, user_id: str, limit: int,
                            after: tuple[datetime, str] | None) -> list[SagaRecord]: ...
    async def list_across_users(self, states: Sequence[State], created_after: datetime | None, limit: int,
                                after: tuple[datetime, str] | None) -> list[SagaRecord]: ...
    async def start_refund(self, tx: Transaction, before: Saga, after: Saga, *, request_id: str, fingerprint: str,
                           reason: str, owner: str, now: datetime, lease_seconds: float) -> bool: ...
    async def drain(self) -> None: ...


class EntitlementRepository(Protocol):
    async def get(self, entitlement_id: str, discount_code: str) -> EntitlementRow | None: ...
    async def uses(self, entitlement_id: str, limit: int) -> list[UseRow]: ...
    async def list_for_user(self, user_id: str, limit: int,
                            after: tuple[datetime, str] | None) -> list[EntitlementRow]: ...
    async def revoke(self, tx: Transaction, redemption_id: str) -> None: ...
    async def lock_usages(self, tx: Transaction, redemption_id: str) -> list[Usage]: ...
    async def stored_use(self, tx: Transaction, request_id: str) -> Consumption | None: ...
    async def record_use(self, tx: Transaction, request: ConsumeCommand, now: datetime,
                         rule: UseRule) -> Consumption | None: ...
    async def get_draw(self, raffle_id: str) -> RaffleDrawRow | None: ...
    async def drawn_tickets(self, raffle_id: str, limit: int,
                            after: tuple[datetime, str] | None) -> list[tuple[datetime, str]]: ...
    async def is_drawn(self, raffle_id: str, *, wait_for_draw: bool = False) -> bool: ...
    async def prepare_draw(self, tx: Transaction, draw: RaffleDrawRow) -> RaffleDrawRow: ...
    async def draw(self, tx: Transaction, raffle_id: str, now: datetime, pick: WinnerPick) -> RaffleDrawRow | None: ...
