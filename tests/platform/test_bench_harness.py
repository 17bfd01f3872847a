"""The load harness drives a real server from separate processes and counts what it measured."""

from __future__ import annotations

import asyncio

from points_cli.bench.harness import format_table, health_scenario, run_scenario
from points_cli.targets import SuiteTargets
from points_platform.config import PlatformSettings
from points_platform.server import create_server
from tests.platform.test_server import SPEC, TOKENS


async def test_health_baseline_is_measured_from_worker_processes() -> None:
    running = await create_server(PlatformSettings(port=0, tokens_json=TOKENS), SPEC)
    await running.set_serving(True)
    try:
        targets = SuiteTargets(ports={"wallet": running.port}, tokens={})
        result = await asyncio.to_thread(
            run_scenario, targets, "wallet", health_scenario("wallet"),
            concurrency=4, processes=2, warmup=0.2, duration=1.0,
        )
    finally:
        await running.stop(0)
    assert result.errors == {}
    assert result.calls > 0 and result.calls_per_second == result.calls / 1.0
    assert 0 < result.p50_ms <= result.p99_ms
    assert "health_check@wallet" in format_table([result])
