"""h2load's Health/Check rate: the yardstick that shows the Python load generator is not the bottleneck."""

from __future__ import annotations

import asyncio

import pytest

from points_cli.bench import h2load
from points_platform.config import PlatformSettings
from points_platform.server import create_server
from tests.platform.test_server import SPEC, TOKENS

SUMMARY = """
finished in 3.00s, 4241.00 req/s, 256.37KB/s
requests: 12723 total, 12787 started, 12723 done, 12723 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 12723 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_the_rate_is_read_from_the_summary() -> None:
    assert h2load.parse(SUMMARY) == 4241.0


@pytest.mark.parametrize(
    "broken", [SUMMARY.replace("0 failed", "3 failed"), SUMMARY.replace("0 errored", "1 errored"), "connect failed"]
)
def test_a_run_with_failures_or_no_summary_is_not_a_baseline(broken: str) -> None:
    with pytest.raises(RuntimeError):
        h2load.parse(broken)


@pytest.mark.skipif(not h2load.available(), reason="h2load is not installed (Debian: nghttp2-client)")
async def test_h2load_completes_health_checks_on_a_real_server() -> None:
    running = await create_server(PlatformSettings(port=0, tokens_json=TOKENS), SPEC)
    await running.set_serving(True)
    try:
        rate = await asyncio.to_thread(h2load.health_check_rate, f"127.0.0.1:{running.port}", duration=1, concurrency=8)
    finally:
        await running.stop(0)
    assert rate > 0
