"""The load harness drives a real server from separate processes and counts what it measured."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from points_cli.bench.cpu import SuiteCpu, write_pids
from points_cli.bench.harness import Result, format_summary, format_table, health_scenario, run_scenario
from points_cli.targets import SuiteTargets
from points_platform.config import PlatformSettings
from points_platform.server import create_server
from tests.platform.test_server import SPEC, TOKENS


async def test_health_baseline_is_measured_from_worker_processes(tmp_path: Path) -> None:
    # The server runs in this process: name it as the suite's "wallet" for the CPU accounting.
    write_pids(tmp_path, {"wallet": [os.getpid()]})
    running = await create_server(PlatformSettings(port=0, tokens_json=TOKENS), SPEC)
    await running.set_serving(True)
    try:
        targets = SuiteTargets(ports={"wallet": running.port}, tokens={})
        result = await asyncio.to_thread(
            run_scenario, targets, "wallet", health_scenario("wallet"),
            concurrency=4, processes=2, warmup=0.2, duration=1.0, cpu=SuiteCpu(tmp_path),
        )
    finally:
        await running.stop(0)
    assert result.errors == {}
    assert result.calls > 0 and result.calls_per_second == result.calls / 1.0
    assert 0 < result.p50_ms <= result.p99_ms
    table = format_table([result])
    assert "health_check@wallet" in table
    # Serving ~thousands of calls costs this process measurable CPU, reported per call.
    cost = result.extra["cpu_ms_per_call"]
    assert set(cost) == {"wallet"} and 0 < cost["wallet"] < 50
    assert "CPU per call by process" in table


def test_cpu_accounting_is_absent_without_a_suite(tmp_path: Path) -> None:
    assert not SuiteCpu(tmp_path).available
    assert SuiteCpu(tmp_path).snapshot() == {}


def test_rounds_are_summarized_by_their_median_and_range() -> None:
    def result(name: str, events: float, ratio: float | None, number: int) -> Result:
        return Result(name, "earning", int(events), {}, 1.0, events, events, 1.0, 2.0, 64, 2, ratio, round=number)

    rounds = [
        result("health_check@earning", 3000, None, 1), result("record_activity", 600, 0.20, 1),
        result("health_check@earning", 3300, None, 2), result("record_activity", 900, 0.27, 2),
        result("health_check@earning", 2900, None, 3), result("record_activity", 700, 0.24, 3),
    ]
    summary = format_summary(rounds).splitlines()
    assert summary[0] == "Over 3 rounds, median (min-max):"
    assert summary[1].split() == ["health_check@earning", "events/s", "3000", "(2900-3300)"]
    assert summary[2].split() == [
        "record_activity", "events/s", "700", "(600-900)", "x", "health", "0.24", "(0.20-0.27)"
    ]
