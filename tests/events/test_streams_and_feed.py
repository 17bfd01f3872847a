"""Streams created on start with their retention, and the consumer example of docs/events.md run
as a separate process against the test nats-server."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from points_cli.event_feed import story_events
from points_platform.embedded_nats import EmbeddedNats
from points_platform.jetstream import DAY_SECONDS, Retention, ensure_streams, stream_name
from tests.events.conftest import SERVICE, Feed
from tests.support.nats import connect_client
from tests.support.wait import HANG_SECONDS


async def test_ensure_streams_creates_then_updates_each_services_stream(nats_server: EmbeddedNats) -> None:
    nc = await connect_client(nats_server)
    try:
        js = nc.jetstream()
        await ensure_streams(js, ["wallet", "earning"])
        await ensure_streams(js, ["wallet"], Retention(max_age_seconds=DAY_SECONDS))  # on an existing stream
        wallet = (await js.stream_info(stream_name("wallet"))).config
        earning = (await js.stream_info(stream_name("earning"))).config
    finally:
        await nc.close()
    assert wallet.subjects == ["points.wallet.>"] and wallet.max_age == DAY_SECONDS
    assert earning.subjects == ["points.earning.>"] and earning.max_age == 7 * DAY_SECONDS
    assert earning.duplicate_window == 300


async def feed_lines(nats_url: str, durable: str, count: int, *extra: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "points_cli.event_feed", "--nats-url", nats_url, "--service", SERVICE,
        "--durable", durable, "--count", str(count), *extra,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), HANG_SECONDS)
    assert process.returncode == 0
    return out.decode().splitlines()


async def test_the_consumer_example_resumes_after_its_last_acknowledged_event(
    feed: Feed, nats_server: EmbeddedNats
) -> None:
    for user in ["alice", "bob", "alice"]:
        await feed.change(user)
    await feed.relay().relay_once()

    first = await feed_lines(nats_server.url, "demo", 3)
    assert sorted(line.split()[2] for line in first) == ["user=alice", "user=alice", "user=bob"]
    assert {line.split()[1] for line in first} == {"wallet.transaction_posted"}
    alices = [line for line in first if "user=alice" in line]  # one user's events keep their order
    assert '"transactionId": "tx-alice-1"' in alices[0] and '"transactionId": "tx-alice-2"' in alices[1]

    await feed.change("carol")
    await feed.relay().relay_once()
    assert [line.split()[2] for line in await feed_lines(nats_server.url, "demo", 1)] == ["user=carol"]
    # A new consumer starts at the beginning; --user keeps one user's story.
    alice = await feed_lines(nats_server.url, "alice-story", 2, "--user", "alice")
    assert [line.split()[2] for line in alice] == ["user=alice", "user=alice"]


async def test_the_demo_reads_the_story_of_its_users_from_every_stream_there_is(
    feed: Feed, nats_server: EmbeddedNats
) -> None:
    since = datetime.now(UTC)
    for user in ["alice", "bob", "alice", "carol"]:
        await feed.change(user)
    await feed.relay().relay_once()

    # Only the wallet's stream exists: the other services' are skipped, not an error.
    # Idle time long enough that a loaded machine does not end the read before the events came.
    story = await story_events(nats_server.url, {"alice", "carol"}, since, "demo-run-1", idle_seconds=2.0)
    assert story is not None
    assert [e.event_id for e in story] == [feed.appended[0], feed.appended[2], feed.appended[3]]
    # Durable: the same consumer read again has nothing new; a later run's consumer starts at its own time.
    assert await story_events(nats_server.url, {"alice"}, since, "demo-run-1", idle_seconds=0.2) == []
    assert await story_events(
        nats_server.url, {"alice"}, since + timedelta(hours=1), "demo-run-2", idle_seconds=0.2
    ) == []  # fmt: skip


async def test_the_demo_tolerates_no_events_and_no_nats(nats_server: EmbeddedNats) -> None:
    since = datetime.now(UTC)
    assert await story_events(nats_server.url, {"alice"}, since, "demo-run-1", idle_seconds=0.2) == []
    nats_server.stop()
    assert await story_events(nats_server.url, {"alice"}, since, "demo-run-2", idle_seconds=0.2) is None
