"""`start_relays`, the one call a service makes: off without a NATS URL; with one it ensures the
stream and publishes in the background, also when NATS only comes up after the service; it prunes
old published rows on the outbox's clock; `close()` stops it, and a service process wired as
docs/events.md says closes it on SIGTERM through `run_service(on_stop=...)`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY

from points_platform.config import PlatformSettings
from points_platform.embedded_nats import EmbeddedNats
from points_platform.embedded_pg import free_port
from points_platform.jetstream import stream_name
from points_platform.relay import PRUNE_EVERY_SECONDS, RelayJob, start_relays
from tests.events.conftest import SERVICE, Feed
from tests.support.nats import reconnected
from tests.support.wait import HANG_SECONDS, eventually, wait_serving

KEEP_SECONDS = 3600.0
REPO = Path(__file__).resolve().parents[2]


def settings(nats_url: str) -> PlatformSettings:
    return PlatformSettings(nats_url=nats_url, outbox_keep_published_seconds=KEEP_SECONDS)


def start(feed: Feed, nats_url: str) -> RelayJob:
    # Pacing of the job's polls and reconnect attempts, so the test does not wait on defaults.
    return start_relays(
        feed.engine, settings(nats_url), feed.outbox, idle_seconds=0.01, reconnect_wait_seconds=0.05,
        poll_seconds=0.01,
    )  # fmt: skip


async def test_without_a_nats_url_nothing_runs_and_events_wait(feed: Feed) -> None:
    job = start(feed, "")
    await feed.change("alice")
    assert not job.is_running
    await job.close()
    assert await feed.unpublished() == 1


async def test_it_ensures_the_stream_publishes_in_the_background_and_stops(
    feed: Feed, nats_server: EmbeddedNats
) -> None:
    await feed.nc.jetstream().delete_stream(stream_name(SERVICE))  # the job must create it
    job = start(feed, nats_server.url)
    try:
        for user in ["alice", "bob", "alice"]:
            await feed.change(user)
        job.wake()
        await eventually(feed.is_drained, what="the background relay published every event")
        stored = await feed.stored()
        assert [m.event.event_id for m in stored if m.event.user_id == "alice"] == [
            feed.appended[0], feed.appended[2]
        ]  # fmt: skip
        assert sorted(m.msg_id for m in stored) == sorted(feed.appended)
    finally:
        await job.close()
    assert not job.is_running
    await feed.change("carol")
    assert await feed.unpublished() == 1  # closed: nothing publishes any more


async def test_a_service_started_before_nats_publishes_once_it_is_up(feed: Feed, nats_server: EmbeddedNats) -> None:
    nats_server.stop()
    job = start(feed, nats_server.url)
    try:
        await feed.change("alice")
        feed.clock.advance(42)
        await feed.change("bob")

        async def backlog_reported() -> bool:
            labels = {"service": SERVICE}
            return (REGISTRY.get_sample_value("points_outbox_backlog", labels) == 2
                    and REGISTRY.get_sample_value("points_outbox_oldest_age_seconds", labels) == 42)

        await eventually(backlog_reported, what="the backlog and its age reported while NATS is down")
        assert job.is_running
        await nats_server.start()
        await eventually(feed.is_drained, what="the events published once NATS came up")
    finally:
        await job.close()
    await reconnected(feed.nc)
    assert sorted(m.msg_id for m in await feed.stored()) == sorted(feed.appended)


async def test_published_rows_are_pruned_after_the_kept_time(feed: Feed, nats_server: EmbeddedNats) -> None:
    job = start(feed, nats_server.url)
    try:
        await feed.change("alice")
        await eventually(feed.is_drained, what="the event published")
        feed.clock.advance(KEEP_SECONDS + PRUNE_EVERY_SECONDS)
        await feed.change("bob")
        await feed.change("carol")

        async def only_the_recent_rows_remain() -> bool:
            async with feed.engine.connect() as conn:
                rows = (await conn.execute(feed.outbox.table.select())).all()
            return {str(row.event_id) for row in rows} == set(feed.appended[1:])

        await eventually(only_the_recent_rows_remain, what="the row published an hour ago pruned")
    finally:
        await job.close()


async def test_a_service_process_wired_as_documented_publishes_and_closes_its_relay_on_sigterm(
    feed: Feed, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    port = free_port()
    marker = tmp_path / "relay-at-stop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
    env |= {
        "POINTS_DATABASE_URL": feed.engine.url.render_as_string(hide_password=False),
        "POINTS_NATS_URL": nats_server.url,
        "POINTS_HOST": "127.0.0.1",
        "POINTS_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.events.service_process", str(marker)], env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await wait_serving(port, alive=lambda: process.poll() is None)
        for user in ["alice", "bob", "alice"]:
            await feed.change(user)
        await eventually(feed.is_drained, what="the service's relay published every event")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, HANG_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        output = process.stdout.read().decode()
        process.stdout.close()
    assert marker.read_text() == "closed", output
    assert sorted(m.msg_id for m in await feed.stored()) == sorted(feed.appended)
