"""Reaching NATS JetStream: the client connection, and the streams the events go to (one per
service, created or updated on start).

Retention (docs/events.md): a stream keeps every event for `max_age` (7 days by default, so a
consumer may be down for a week and catch up), bounded by `max_bytes` as a safety net (oldest
dropped first); consumers keep their own position (durable consumers), so nothing is deleted when
read. The duplicate window is how long JetStream remembers a `Nats-Msg-Id` to drop a repeat: a
relay republishes what it could not mark published at its next pass, seconds later, well inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from points_platform.events import service_subjects

log = structlog.get_logger("points.nats")

DAY_SECONDS = 86_400.0


async def connect(url: str, *, name: str, reconnect_wait_seconds: float = 2.0) -> NatsClient:
    """A client that keeps reconnecting for as long as the process lives: an outage of NATS only
    delays the relay (it keeps the rows), it must never end the connection for good."""

    async def on_error(error: Exception) -> None:
        # One line per failed attempt while NATS is away, instead of the client's default traceback.
        log.warning("nats_error", error=f"{type(error).__name__}: {error}")

    async def on_disconnected() -> None:
        log.warning("nats_disconnected")

    async def on_reconnected() -> None:
        log.info("nats_reconnected")

    return await nats.connect(
        url,
        name=name,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=reconnect_wait_seconds,
        connect_timeout=5,
    )


@dataclass(frozen=True)
class Retention:
    max_age_seconds: float = 7 * DAY_SECONDS
    max_bytes: int = 10 * 2**30
    duplicate_window_seconds: float = 300.0


def stream_name(service: str) -> str:
    return f"POINTS_{service.upper()}"


def stream_config(service: str, retention: Retention = Retention()) -> StreamConfig:
    return StreamConfig(
        name=stream_name(service),
        description=f"Domain events of the Points {service} service (docs/events.md)",
        subjects=[service_subjects(service)],
        retention=RetentionPolicy.LIMITS,
        max_age=retention.max_age_seconds,
        max_bytes=retention.max_bytes,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        duplicate_window=retention.duplicate_window_seconds,
    )


async def ensure_streams(js: JetStreamContext, services: list[str], retention: Retention = Retention()) -> None:
    """Create each service's stream, or bring an existing one to this configuration."""
    for service in services:
        config = stream_config(service, retention)
        try:
            await js.stream_info(stream_name(service))
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
