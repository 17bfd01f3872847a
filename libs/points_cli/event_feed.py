"""Print a Points service's domain events from NATS JetStream: the consumer example of docs/events.md.

    python -m points_cli.event_feed --nats-url nats://127.0.0.1:4222 --service wallet --durable my-app

A durable pull consumer: the server remembers how far `--durable` has acknowledged, so a consumer
that restarts resumes after its last acknowledged event. Delivery is at-least-once (an event whose
ack was lost is delivered again), so a consumer de-duplicates by event id: this one in memory; a
real one records the ids it handled in the same transaction as what it does with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timedelta
from typing import TextIO

import nats
import nats.errors
import nats.js.errors
from google.protobuf import json_format
from nats.js.api import ConsumerConfig, DeliverPolicy

from points.events.v1 import envelope_pb2
from points_platform.events import service_subjects
from points_platform.jetstream import stream_name

SERVICES = ("wallet", "earning", "catalog", "redemption")
# A consumer the server deletes once nobody has read it for this long (the demo's are one-offs).
DEMO_CONSUMER_IDLE_SECONDS = 3600.0
# Leeway for the server's clock against ours when starting a consumer at a point in time.
CLOCK_LEEWAY = timedelta(minutes=1)


def describe(event: envelope_pb2.Event) -> str:
    """One line: when, what, whose, and the payload's fields."""
    payload = json_format.MessageToDict(getattr(event, event.event_type))
    when = event.occurred_time.ToDatetime().isoformat(timespec="seconds")
    return f"{when} {event.source_service}.{event.event_type} user={event.user_id or '-'} {json.dumps(payload)}"


async def follow(
    url: str,
    service: str,
    durable: str,
    *,
    user: str | None = None,
    count: int | None = None,
    idle_seconds: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print events until `count` were printed, or nothing came for `idle_seconds`, or forever.
    Returns how many were printed."""
    nc = await nats.connect(url, name=f"event-feed-{durable}")
    try:
        js = nc.jetstream()
        subscription = await js.pull_subscribe(service_subjects(service), durable=durable, stream=stream_name(service))
        seen: set[str] = set()
        printed = 0
        while count is None or printed < count:
            try:
                messages = await subscription.fetch(batch=100, timeout=idle_seconds or 5.0)
            except TimeoutError:  # nats' own or asyncio's: the fetch raises either when nothing came
                if idle_seconds is not None:
                    break  # nothing new for idle_seconds: done
                continue
            for message in messages:
                event = envelope_pb2.Event.FromString(message.data)
                if event.event_id not in seen and (user is None or event.user_id == user):
                    seen.add(event.event_id)
                    print(describe(event), file=out, flush=True)
                    printed += 1
                await message.ack()  # after handling it: a crash before here means a redelivery
        return printed
    finally:
        await nc.close()


async def story_events(
    url: str, users: set[str], since: datetime, durable: str, *, idle_seconds: float
) -> list[envelope_pb2.Event] | None:
    """The events about `users` stored since `since` in every service's stream, in the order they
    happened: for each stream that exists, a durable pull consumer starting at `since` is read
    until nothing new came for `idle_seconds`. None when nobody answers at `url`; a service whose
    stream does not exist yet (it has never published) contributes nothing."""

    async def quiet(_error: Exception) -> None:
        pass  # one attempt; the caller says NATS is away

    try:
        nc = await nats.connect(url, name=f"event-feed-{durable}", error_cb=quiet, max_reconnect_attempts=1)
    except (nats.errors.NoServersError, OSError, TimeoutError):
        return None
    events: dict[str, envelope_pb2.Event] = {}  # by event id: at-least-once delivery
    try:
        js = nc.jetstream()
        for service in SERVICES:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=since - CLOCK_LEEWAY,
                inactive_threshold=DEMO_CONSUMER_IDLE_SECONDS,
            )
            try:
                subscription = await js.pull_subscribe(
                    service_subjects(service), durable=durable, stream=stream_name(service), config=config
                )
            except nats.js.errors.NotFoundError:
                continue  # no stream: this service has published nothing yet
            while True:
                try:
                    messages = await subscription.fetch(batch=100, timeout=idle_seconds)
                except TimeoutError:  # nats' own or asyncio's: nothing new for idle_seconds
                    break
                for message in messages:
                    event = envelope_pb2.Event.FromString(message.data)
                    if event.user_id in users:
                        events[event.event_id] = event
                    await message.ack()
    finally:
        await nc.close()
    return sorted(events.values(), key=lambda e: e.occurred_time.ToNanoseconds())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--service", required=True, choices=SERVICES)
    parser.add_argument("--durable", required=True, help="consumer name: the server keeps its position")
    parser.add_argument("--user", help="print only this user's events")
    parser.add_argument("--count", type=int, help="stop after printing this many events")
    parser.add_argument("--idle-seconds", type=float, help="stop when no event came for this long")
    args = parser.parse_args(argv)
    asyncio.run(
        follow(
            args.nats_url, args.service, args.durable, user=args.user, count=args.count, idle_seconds=args.idle_seconds
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
