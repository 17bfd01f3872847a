"""`points up` and NATS: the embedded server answers with JetStream, every service gets its URL, a
killed server is restarted on the same port and store, and it stops with the suite; `--nats-url`
uses a server started separately instead (and leaves it running)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats.errors
import psutil  # type: ignore[import-untyped]  # psutil ships no type hints
import pytest

from points_platform.embedded_nats import EmbeddedNats
from points_platform.jetstream import ensure_streams, stream_name
from tests.e2e.suite_process import SERVICES, SuiteProcess, alive
from tests.support.nats import connect_once
from tests.support.wait import eventually

pytestmark = pytest.mark.slow


def nats_servers(suite: SuiteProcess) -> list[int]:
    assert suite.proc is not None
    pids = []
    for child in psutil.Process(suite.proc.pid).children(recursive=True):
        try:
            if child.name() == "nats-server":
                pids.append(child.pid)
        except psutil.NoSuchProcess:  # exited between the listing and the look (the killed server, reaped)
            continue
    return pids


def service_nats_urls(suite: SuiteProcess) -> dict[str, str]:
    """What each service process was given as its NATS URL (from its environment)."""
    assert suite.proc is not None
    urls = {}
    for child in psutil.Process(suite.proc.pid).children(recursive=True):
        try:
            command, environ = child.cmdline()[-2:], child.environ()
        except psutil.NoSuchProcess:  # exited between the listing and the look
            continue
        for service in SERVICES:
            if command == ["-m", service]:
                urls[service] = environ.get(f"POINTS_{service.upper()}_NATS_URL", "")
    return urls


async def jetstream_messages(url: str, stream: str) -> int:
    nc = await connect_once(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


@pytest.fixture
def suite(traversable_tmp_path: Path) -> Iterator[SuiteProcess]:
    running = SuiteProcess(traversable_tmp_path / "state")
    running.start()
    yield running
    running.kill_all()


async def test_the_suites_nats_answers_is_supervised_and_stops_with_it(suite: SuiteProcess) -> None:
    url = f"nats://127.0.0.1:{suite.nats_port}"
    banner = "".join(suite.output)
    assert f"nats        {url}   domain events (embedded, JetStream store " in banner, banner
    assert (suite.state_dir / "nats-url").read_text().strip() == url
    assert service_nats_urls(suite) == dict.fromkeys(SERVICES, url)

    nc = await connect_once(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, ["wallet"])
        await js.publish("points.wallet.transaction_posted.0", b"kept", headers={"Nats-Msg-Id": "e2e-1"})
    finally:
        await nc.close()

    [killed] = nats_servers(suite)
    os.kill(killed, signal.SIGKILL)

    async def restarted_with_its_store() -> bool:
        servers = nats_servers(suite)
        if servers in ([], [killed]):
            return False
        try:
            return await jetstream_messages(url, stream_name("wallet")) == 1
        except (nats.errors.Error, OSError):  # not accepting clients, or JetStream still recovering its store
            return False

    await eventually(restarted_with_its_store, what="NATS restarted on its port with its stream")

    async def restart_counted() -> bool:  # written once the restarted server is ready
        return bool(json.loads((suite.state_dir / "restarts.json").read_text()) == {"nats": 1})

    await eventually(restart_counted, what="the restart counted in restarts.json")
    [restarted] = nats_servers(suite)
    assert suite.stop(signal.SIGTERM) == 0
    assert not alive(restarted), "nats-server outlived points up"


@pytest.fixture
async def separate_nats(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "separate-nats")
    await server.start()
    yield server
    server.stop()


async def test_nats_url_uses_a_separately_started_server_and_leaves_it_running(
    separate_nats: EmbeddedNats, traversable_tmp_path: Path
) -> None:
    suite = SuiteProcess(traversable_tmp_path / "state", extra_args=["--nats-url", separate_nats.url])
    suite.start()
    try:
        assert f"nats        {separate_nats.url}   domain events (given by --nats-url" in "".join(suite.output)
        assert nats_servers(suite) == [], "an embedded NATS started although a URL was given"
        assert service_nats_urls(suite) == dict.fromkeys(SERVICES, separate_nats.url)
        assert not (suite.state_dir / "nats").exists()
        assert suite.stop(signal.SIGTERM) == 0
    finally:
        suite.kill_all()
    assert separate_nats.is_running
    nc = await connect_once(separate_nats.url)
    try:
        # JetStream still answers; the services' relays may have created their streams on it.
        assert (await nc.jetstream().account_info()).streams <= len(SERVICES)
    finally:
        await nc.close()
