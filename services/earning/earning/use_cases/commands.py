"""The commands the use cases take: one per mutating RPC, validated and mapped by the api layer.

`request_id` is the idempotency key and `fingerprint` the hash of the whole proto request: the
same key with another request is IDEMPOTENCY_KEY_REUSED.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from earning.domain.challenge import ChallengeSpec
from earning.domain.model import ActivityEvent, Rules


@dataclass(frozen=True)
class IncomingEvent:
    """RecordActivity / RecordActivities / StreamActivities: one event; its event_id is the key."""

    event: ActivityEvent
    fingerprint: str  # hash of the whole event: same id + different content = key reuse


@dataclass(frozen=True)
class UpdateRules:
    request_id: str
    fingerprint: str
    rules: Rules
    expected_version: int  # 0 = no check


@dataclass(frozen=True)
class CreateChallenge:
    request_id: str
    fingerprint: str
    spec: ChallengeSpec


@dataclass(frozen=True)
class JoinChallenge:
    request_id: str
    fingerprint: str
    challenge_id: str
    user_id: str


@dataclass(frozen=True)
class ResolveHeldEarning:
    request_id: str
    fingerprint: str
    held_earning_id: str
    approve: bool
    note: str
    reviewer: str  # the caller's identity


@dataclass(frozen=True)
class RequeueFailedCredits:
    request_id: str
    fingerprint: str
    credit_ids: Sequence[str]


@dataclass(frozen=True)
class PreviewEarning:
    """A dry run: nothing is written, so no request id."""

    rules: Rules
    event: ActivityEvent
