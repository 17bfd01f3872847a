"""What the use cases need from outside, as Protocols: the database's repositories (`Database`,
implemented by `earning.store`) and the wallet (`CreditPort`, implemented by `earning.peers`),
with the records they exchange."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message

from earning.domain.batch import BatchWrites, KnownFacts
from earning.domain.challenge import Challenge, Participation
from earning.domain.credit import DeadLetter, FailedCredit, PendingCredit, Requeue
from earning.domain.evaluation import ReceiveRate, Streak
from earning.domain.held import HeldEarning
from earning.domain.model import ActivityEvent, EventStatus, RuleApplication, Rules
from points_platform.idempotency import RequestKey

T = TypeVar("T")
R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    fingerprint: str
    user_id: str
    status: EventStatus
    points: int
    breakdown: tuple[RuleApplication, ...]
    rejection_reason: str
    held_earning_id: str
    credit_request_id: str


@dataclass(frozen=True)
class Replay:
    """A stored event and the state of its wallet credit (pending: resend it)."""

    stored: StoredEvent
    pending_credit: PendingCredit | None
    wallet_transaction_id: str


@dataclass(frozen=True)
class LockedUsers:
    streaks: dict[str, Streak]
    rates: dict[str, ReceiveRate]
    rules_version: int  # the latest stored
    # each locked user's event version after the lock bumped it (a preview locks nothing: empty)
    versions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NewEvent:
    event: ActivityEvent
    stored: StoredEvent
    day: date


@dataclass(frozen=True)
class NewHeld:
    held_earning_id: str
    event: ActivityEvent
    day: date
    points: int
    sponsored: tuple[tuple[str, int], ...]
    reason: str


@dataclass
class CreditReport:
    """The wallet's answer to a send: credited, refused for good, or failed this time (the rest)."""

    credited: dict[str, str] = field(default_factory=dict)  # request id -> wallet transaction id
    refused: dict[str, str] = field(default_factory=dict)  # request id -> why, final: dead-lettered
    error: str = ""  # why the others failed this time: retried
    # failed alone with the wallet's own error (INTERNAL/UNKNOWN): retried up to a limit
    suspect: dict[str, str] = field(default_factory=dict)
    # refused because the user is suspended: held, resent after suspended_retry_seconds
    held: dict[str, str] = field(default_factory=dict)


class CreditPort(Protocol):
    async def credit(self, entries: Sequence[PendingCredit]) -> CreditReport: ...


class BatchRepository(Protocol):
    """A batch of events: locks, reads and writes, a fixed number of statements per batch."""

    async def lock_batch(self, user_ids: Sequence[str], device_ids: Sequence[str]) -> LockedUsers: ...

    async def peek_users(self, user_ids: Sequence[str], rules_version: int) -> LockedUsers: ...

    async def read_batch(
        self,
        events: Sequence[tuple[ActivityEvent, date]],
        users: LockedUsers,
        lookback: timedelta,
        *,
        lock: bool = True,
    ) -> tuple[dict[str, Replay], KnownFacts]: ...

    async def write(
        self,
        now: datetime,
        new_events: Sequence[NewEvent],
        held: Sequence[NewHeld],
        credits: Sequence[PendingCredit],
        writes: BatchWrites,
        versions: Mapping[str, int],
    ) -> None: ...


class ActivityRepository(Protocol):
    """Users' streaks, daily counters and sponsor budgets."""

    async def get_streak(self, user_id: str) -> Streak: ...

    async def counters(self, user_id: str, day: date) -> dict[int, tuple[int, int, int]]: ...

    async def add_to_counters(
        self, user_id: str, day: date, activity: int, *, capped: int = 0, credited: int = 0, held: int = 0
    ) -> None: ...

    async def charge_budget(self, challenge_id: str, points: int, now: datetime) -> None: ...

    async def refund_budget(self, challenge_id: str, points: int) -> None: ...


class AdminRepository(Protocol):
    """Rule versions, challenges, participations, held earnings and stored responses."""

    async def latest_rule_version(self) -> int: ...

    async def all_rules(self) -> list[Rules]: ...

    async def insert_rules(self, rules: Rules, effective_from: datetime, now: datetime) -> None: ...

    async def lock_rules(self) -> None: ...

    async def insert_challenge(self, challenge: Challenge) -> None: ...

    async def get_challenge(self, challenge_id: str, *, lock: bool = False) -> Challenge | None: ...

    async def list_challenges(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Challenge]: ...

    async def get_participation(self, challenge_id: str, user_id: str) -> Participation | None: ...

    async def insert_participation(self, p: Participation) -> None: ...

    async def get_held(self, held_earning_id: str, *, lock: bool = False) -> HeldEarning | None: ...

    async def resolve_held(
        self, held_earning_id: str, state: int, when: datetime, by: str, note: str, credit_request_id: str
    ) -> None: ...

    async def list_held(
        self, user_id: str, state: int, after: tuple[datetime, str] | None, limit: int
    ) -> list[HeldEarning]: ...

    async def held_points_on(self, user_id: str, day: date) -> int: ...


class OutboxRepository(Protocol):
    """The credit outbox and its dead letter."""

    async def add_credit(self, credit: PendingCredit, now: datetime) -> None: ...

    async def credit_state(self, request_id: str) -> tuple[PendingCredit | None, str]: ...

    async def uncredited_points_on(self, user_id: str, day: date) -> tuple[int, int]: ...

    async def due_credits(self, created_by: datetime, limit: int, *, held_before: datetime) -> list[PendingCredit]: ...

    async def mark_sent(
        self, transactions: Mapping[str, str], refused: Mapping[str, str], failed: Sequence[str],
        error: str, suspect: Mapping[str, str], wallet_error_limit: int, now: datetime,
        held: Mapping[str, str] | None = None,
    ) -> list[DeadLetter]: ...

    async def list_failed(self, user_id: str, after: tuple[datetime, str] | None, limit: int) -> list[FailedCredit]: ...

    async def requeue(self, request_ids: Sequence[str]) -> Requeue: ...

    async def outbox_counts(self) -> tuple[int, int]: ...


class Session(Protocol):
    """The repositories of one connection, in the transaction that opened it."""

    @property
    def batch(self) -> BatchRepository: ...

    @property
    def activity(self) -> ActivityRepository: ...

    @property
    def admin(self) -> AdminRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...


class Database(Protocol):
    """Where the use cases open their transactions."""

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """One read-write transaction: committed when the block ends, rolled back on an error."""
        ...

    def reading(self) -> AbstractAsyncContextManager[Session]:
        """Reads (each statement its own snapshot); nothing to commit."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[Session]:
        """Reads from one read-only snapshot: every read sees the same state, and a write fails."""
        ...

    def autocommit(self) -> AbstractAsyncContextManager[Session]:
        """Each statement commits on its own."""
        ...

    async def idempotent(
        self, key: RequestKey, reply_type: type[R], work: Callable[[Session], Awaitable[R]],
        legacy: Callable[[Session, dict[str, Any]], Awaitable[R]],
    ) -> R:
        """The reply stored under `key` (IDEMPOTENCY_KEY_REUSED when the key came with another
        request), else `work`'s, stored in the same transaction as its effect. `work` may run again
        after a conflict rolled it back: it calls no other service. A key stored before replies were
        typed holds a small JSON object (ids, a version): `legacy` rebuilds the reply from it."""
        ...

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` (which opens its own transaction) again after a serialization failure,
        deadlock, or a concurrent twin's unique violation."""
        ...
