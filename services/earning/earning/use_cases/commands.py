"""The commands the use cases take: one per mutating RPC, validated and mapped by the api layer.

`key` is the request's idempotency key and fingerprint (`points_platform.idempotency.RequestKey`,
built by the api layer from the proto request): the same key with another request is
IDEMPOTENCY_KEY_REUSED.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from earning.domain.challenge import ChallengeSpec
from earning.domain.model import ActivityEvent, Rules
from points_platform.idempotency import RequestKey

T = TypeVar("T")
R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class Reply(Generic[T, R]):
    """The RPC's reply message and how the api layer builds it from a use case's result: the
    platform's idempotency stores it (proto bytes) with the effect and replays it as stored."""

    type: type[R]
    of: Callable[[T], R]


@dataclass(frozen=True)
class IncomingEvent:
    """RecordActivity / RecordActivities / StreamActivities: one event; its event_id is the key."""

    event: ActivityEvent
    fingerprint: str  # hash of the whole event: same id + different content = key reuse


@dataclass(frozen=True)
class UpdateRules:
    key: RequestKey
    rules: Rules
    expected_version: int  # 0 = no check


@dataclass(frozen=True)
class CreateChallenge:
    key: RequestKey
    spec: ChallengeSpec


@dataclass(frozen=True)
class JoinChallenge:
    key: RequestKey
    challenge_id: str
    user_id: str


@dataclass(frozen=True)
class ResolveHeldEarning:
    key: RequestKey
    held_earning_id: str
    approve: bool
    note: str
    reviewer: str  # the caller's identity


@dataclass(frozen=True)
class RequeueFailedCredits:
    key: RequestKey
    credit_ids: Sequence[str]


@dataclass(frozen=True)
class PreviewEarning:
    """A dry run: nothing is written, so no request id."""

    rules: Rules
    event: ActivityEvent
