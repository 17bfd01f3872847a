"""Earning's domain events (points.events.v1) as outbox rows, written by the statements that make the
changes (docs/events.md, "Earning's events"):

- `points_earned`: one per new wallet credit of a batch (one per batch and user, or per user and day
  when a batch spans a user's two local days), in the batch's write statement; aggregate the user,
  version the user's batch counter (`user_state.event_version`, bumped under the user's lock by
  every batch that locks the user), so one user's events are versioned in commit order;
- `earning_held` (in the batch's write statement) and `earning_resolved` (in the review's
  transaction, with the held row locked): aggregate the held earning, versions 1 and 2;
- `challenge_budget_exhausted`: when a charge brings a sponsor budget from below to exactly its
  size, in the charge's transaction (the challenge row is locked, so one charge crosses);
  aggregate the challenge, version the number of times its budget ran out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.credit import PendingCredit
from earning.use_cases.ports import NewEvent, NewHeld
from points.events.v1 import earning_pb2 as events_pb2
from points.events.v1 import envelope_pb2
from points_platform.events import new_event, partition_key, partition_of, subject_for
from points_platform.outbox import Outbox

SERVICE = "earning"
# Keep it: change it only with an empty backlog (a user's pending rows would sit in two partitions).
# Fewer than catalog's and redemption's 16: a relay pass costs a transaction per partition with a
# backlog, and earning's events spread over every partition on each pass (docs/benchmarks.md,
# "Issue 19: the feed's cost"); 4 still lets four replicas publish in parallel.
PARTITIONS = 4


class EarningEvents:
    """The service's outbox, and `wake` (set once the relay runs) to publish right after a commit."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.wake: Callable[[], None] = lambda: None

    def columns(self, events: Sequence[envelope_pb2.Event]) -> dict[str, list[Any]]:
        """The outbox columns of `events` as arrays for an `unnest` insert, in publish order."""
        cols: dict[str, list[Any]] = {"ob_ids": [], "ob_subjects": [], "ob_partitions": [], "ob_payloads": []}
        for event in events:
            partition = partition_of(partition_key(event), self.outbox.partitions)
            cols["ob_ids"].append(event.event_id)
            cols["ob_subjects"].append(subject_for(self.outbox.service, event.event_type, partition))
            cols["ob_partitions"].append(partition)
            cols["ob_payloads"].append(event.SerializeToString())
        return cols

    async def append(self, conn: AsyncConnection, events: Sequence[envelope_pb2.Event]) -> None:
        await self.outbox.append(conn, events)


@dataclass
class Written:
    """Whether a transaction's repositories appended events (the relay is woken after its commit)."""

    events: bool = field(default=False)


def batch_events(
    batch_id: str,
    now: datetime,
    new_events: Sequence[NewEvent],
    held: Sequence[NewHeld],
    credits: Sequence[PendingCredit],
    versions: Mapping[str, int],
) -> list[envelope_pb2.Event]:
    """A batch's events: per new credit its points_earned (naming the events it pays), then per held
    earning its earning_held; in batch order, so a user's events keep the order of their decisions."""
    paid: dict[str, list[str]] = {}
    for n in new_events:
        if n.stored.credit_request_id:
            paid.setdefault(n.stored.credit_request_id, []).append(n.event.event_id)
    out = [
        new_event(
            SERVICE,
            events_pb2.PointsEarned(batch_id=batch_id, points=c.amount, activity_event_ids=paid.get(c.request_id, []),
                                    credit_id=c.request_id),
            user_id=c.user_id, aggregate_id=c.user_id, aggregate_version=versions[c.user_id], occurred_time=now,
        )
        for c in credits
    ]
    out.extend(
        new_event(
            SERVICE,
            events_pb2.EarningHeld(held_earning_id=h.held_earning_id, activity_event_id=h.event.event_id,
                                   points=h.points, reason=h.reason),
            user_id=h.event.user_id, aggregate_id=h.held_earning_id, aggregate_version=1, occurred_time=now,
        )
        for h in held
    )
    return out


def resolved(held_earning_id: str, user_id: str, approved: bool, points: int, reviewer: str,
             now: datetime) -> envelope_pb2.Event:
    payload = events_pb2.EarningResolved(
        held_earning_id=held_earning_id,
        resolution=events_pb2.EARNING_RESOLUTION_APPROVED if approved else events_pb2.EARNING_RESOLUTION_REJECTED,
        points=points if approved else 0, resolved_by=reviewer,
    )
    return new_event(SERVICE, payload, user_id=user_id, aggregate_id=held_earning_id, aggregate_version=2,
                     occurred_time=now)


def budget_exhausted(challenge_id: str, budget: int, exhaustions: int, now: datetime) -> envelope_pb2.Event:
    payload = events_pb2.ChallengeBudgetExhausted(challenge_id=challenge_id, budget_points=budget)
    payload.exhaust_time.FromDatetime(now)
    return new_event(SERVICE, payload, user_id="", aggregate_id=challenge_id, aggregate_version=exhaustions,
                     occurred_time=now)
