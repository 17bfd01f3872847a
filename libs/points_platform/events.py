"""Building domain events (points.events.v1.Event) and naming where they go.

Subjects are `points.<service>.<event_type>.<partition>`; the partition is a stable hash of the
user id (of the aggregate id for events about no user), so every event of one user lands in one
partition, which one relay publishes in order (docs/events.md).
"""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime

from google.protobuf.message import Message

from points.events.v1 import envelope_pb2

SUBJECT_ROOT = "points"

# Payload message name -> the envelope's oneof field (the event type), from the contract itself.
_PAYLOAD_FIELDS = {
    field.message_type.full_name: field.name
    for field in envelope_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
    if field.message_type is not None
}
EVENT_TYPES = frozenset(_PAYLOAD_FIELDS.values())


def new_event(
    source_service: str,
    payload: Message,
    *,
    user_id: str,
    aggregate_id: str,
    aggregate_version: int,
    occurred_time: datetime,
) -> envelope_pb2.Event:
    """An envelope around `payload` with a fresh event id; event_type names the payload."""
    event_type = _PAYLOAD_FIELDS.get(payload.DESCRIPTOR.full_name)
    if event_type is None:
        raise ValueError(f"{payload.DESCRIPTOR.full_name} is not an event payload")
    event = envelope_pb2.Event(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        user_id=user_id,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        source_service=source_service,
    )
    event.occurred_time.FromDatetime(occurred_time)
    getattr(event, event_type).CopyFrom(payload)
    return event


def partition_of(key: str, partitions: int) -> int:
    """CRC-32 (IEEE) of the UTF-8 key, mod `partitions`: stable across processes and languages
    (Python's own hash() is salted per process)."""
    return zlib.crc32(key.encode()) % partitions


def partition_key(event: envelope_pb2.Event) -> str:
    """What orders an event: its user, or for events about no user (stock, budgets) its aggregate."""
    return event.user_id or event.aggregate_id


def subject_for(service: str, event_type: str, partition: int) -> str:
    return f"{SUBJECT_ROOT}.{service}.{event_type}.{partition}"


def service_subjects(service: str) -> str:
    """The wildcard covering every event of one service (its stream's subjects)."""
    return f"{SUBJECT_ROOT}.{service}.>"
