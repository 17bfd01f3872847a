"""The open-loop generator sends on its schedule whatever the replies do, measures from the intended
send time, counts every request it did not send or did not see answered, and the reports give
every process's CPU per call in Health/Checks."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import pytest

from points_cli.bench import openloop
from points_cli.bench.cpu import SuiteCpu, in_health_checks, write_pids
from points_cli.bench.harness import (
    Result,
    Scenario,
    format_summary,
    format_table,
    health_scenario,
    measure_scenario,
    relate_to_health,
    run_scenario,
)
from points_cli.bench.openloop import Percentiles, latency_ms, parse_rate, send_offsets
from points_cli.targets import SuiteTargets
from points_platform.config import PlatformSettings
from points_platform.server import create_server
from tests.platform.test_server import SPEC, TOKENS


def test_processes_share_one_evenly_spaced_schedule() -> None:
    first = list(itertools.islice(send_offsets(100.0, 0, 2), 5))
    second = list(itertools.islice(send_offsets(100.0, 1, 2), 5))
    assert first == pytest.approx([0.00, 0.02, 0.04, 0.06, 0.08])
    assert second == pytest.approx([0.01, 0.03, 0.05, 0.07, 0.09])
    merged = sorted(first + second)
    assert merged == pytest.approx([k / 100 for k in range(10)])
    with pytest.raises(ValueError):
        next(send_offsets(0.0, 0, 1))
    with pytest.raises(ValueError):
        next(send_offsets(10.0, 2, 2))


def test_a_stall_counts_against_every_request_it_delayed() -> None:
    # Requests due every 10 ms; the server stalls from 0 to 100 ms and then answers all at once.
    # From the intended time the ten delayed requests waited 100, 90, ..., 10 ms; a closed loop
    # would have sent one of them and recorded a single slow call.
    intended = [k / 100 for k in range(10)]
    waited = [latency_ms(t, 0.100) for t in intended]
    assert waited == pytest.approx([100 - 10 * k for k in range(10)])
    # With 90 quick answers beside them the delayed tenth of the requests is the tail: p99 is the
    # second slowest (rank round(0.99 * 99) = 98 of 0..99). A closed loop's 91 samples would show 1 ms.
    spread = Percentiles.of(waited + [1.0] * 90)
    assert (spread.p50, spread.p90) == (1.0, 1.0)
    assert spread.p99 == pytest.approx(90.0) and spread.max == pytest.approx(100.0)
    assert Percentiles.of([100.0] + [1.0] * 90).p99 == 1.0
    empty = Percentiles.of([])
    assert all(v != v for v in (empty.p50, empty.p90, empty.p99, empty.max))  # NaN: nothing measured


class VirtualClock:
    """Time that moves only when the generator sleeps; ready calls run before and after it moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.at: dict[float, asyncio.Event] = {}

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await self._settle()  # calls just sent run before time moves, as they would on a real loop
        self.now += seconds
        for moment, event in self.at.items():
            if self.now >= moment - 1e-9:
                event.set()
        await self._settle()

    @staticmethod
    async def _settle() -> None:
        for _ in range(10):  # the ready calls, their tasks' ends and done callbacks
            await asyncio.sleep(0)


async def test_requests_due_while_the_cap_is_full_are_dropped_and_counted() -> None:
    clock = VirtualClock()
    release = clock.at.setdefault(0.5, asyncio.Event())

    async def call(seq: int) -> None:
        if seq < 2:  # the first two hang until 0.5 s: the cap of 2 is full meanwhile
            await release.wait()

    outcome = await openloop.drive(
        [call], rate=10.0, worker=0, workers=1, max_in_flight=2, start=0.0, record_from=0.0, stop_at=1.0,
        clock=clock, sleep=clock.sleep,
    )
    # Due at 0.0 .. 0.9: two sent and held, three (0.2, 0.3, 0.4) dropped, five answered at once.
    assert outcome.intended == 10
    assert outcome.dropped == 3
    assert outcome.completed == 7 and outcome.unfinished == 0 and not outcome.errors
    assert sorted(outcome.latencies) == pytest.approx([0.0] * 5 + [400.0, 500.0])
    assert outcome.late == 0


async def test_unanswered_and_failed_calls_are_counted_and_the_unanswered_measured_at_their_age() -> None:
    clock = VirtualClock()
    never = asyncio.Event()

    async def call(seq: int) -> None:
        if seq == 3:
            await never.wait()
        if seq == 4:
            raise RuntimeError("redemption ended cancelled")

    outcome = await openloop.drive(
        [call], rate=10.0, worker=0, workers=1, max_in_flight=8, start=0.0, record_from=0.2, stop_at=0.6,
        drain_seconds=0.0, clock=clock, sleep=clock.sleep,
    )
    # Recorded: due at 0.2 .. 0.5; the one due at 0.3 never answers and is cancelled at the end,
    # the one due at 0.4 fails the scenario's own check.
    assert outcome.intended == 4 and outcome.unfinished == 1 and outcome.dropped == 0
    assert outcome.errors == {"RuntimeError": 1}
    assert outcome.completed == 4  # warm-up (0.0, 0.1) included
    assert len(outcome.latencies) == 3
    assert max(outcome.latencies) == pytest.approx(latency_ms(0.3, clock.now))


def test_cpu_per_call_in_health_checks() -> None:
    units = in_health_checks({"redemption": 2.0, "catalog": 1.5, "postgres": 3.0}, 0.25)
    assert units == {"redemption": 8.0, "catalog": 6.0, "postgres": 12.0}
    assert sum(units.values()) == 26.0
    assert in_health_checks({"wallet": 1.0}, None) == {}
    assert in_health_checks({"wallet": 1.0}, 0.0) == {}


def test_relating_to_health_keeps_an_open_loops_rate_out_of_the_ratio() -> None:
    health = Result("health_check@wallet", "wallet", 4000, {}, 1.0, 4000, 4000, 1.0, 2.0, 64, 2)
    health.extra["cpu_ms_per_call"] = {"wallet": 0.2}
    closed = Result("credit_random", "wallet", 1000, {}, 1.0, 1000, 1000, 1.0, 2.0, 64, 2)
    closed.extra["cpu_ms_per_call"] = {"wallet": 0.5, "postgres": 0.1}
    opened = Result("credit_random open@100/s", "wallet", 100, {}, 1.0, 100, 100, 1.0, 2.0, 256, 2,
                    offered_rate=100.0)
    opened.extra["cpu_ms_per_call"] = {"wallet": 0.6}
    relate_to_health(closed, health)
    relate_to_health(opened, health)
    assert closed.ratio_to_health == 0.25
    assert closed.extra["cpu_hc_per_call"] == {"wallet": 2.5, "postgres": 0.5}
    assert opened.ratio_to_health is None
    assert opened.extra["cpu_hc_per_call"] == {"wallet": 3.0}


def test_half_the_maximum_is_half_the_closed_loops_rate_measured_just_before() -> None:
    scenario = health_scenario("earning")
    asked: list[tuple[float | None, str | None]] = []

    def measure(s: Scenario, rate: float | None, label: str | None) -> Result:
        asked.append((rate, label))
        calls = 800 if rate is None else rate
        return Result(label or s.name, s.target, int(calls), {}, 1.0, calls, calls, 1.0, 2.0, 64, 2, offered_rate=rate)

    floor = Result("floor_fresh", "postgres", 40, {}, 1.0, 40, 4000, 1.0, 2.0, 8, 1)
    closed, opened = measure_scenario(measure, scenario, rate=None, rate_fraction=0.5, floor=floor)
    assert asked == [(None, None), (400.0, "health_check@earning open@0.5max")]
    assert closed.ratio_to_floor == 0.2 and opened.ratio_to_floor is None
    asked.clear()
    fixed = measure_scenario(measure, scenario, rate=100.0, rate_fraction=None, floor=floor)
    assert [r.offered_rate for r in fixed] == [100.0] and asked == [(100.0, None)]
    asked.clear()
    only_closed = measure_scenario(measure, scenario, rate=None, rate_fraction=None, floor=None)
    assert asked == [(None, None)] and only_closed[0].ratio_to_floor is None


def test_the_rate_is_a_number_or_half() -> None:
    assert parse_rate("100") == (100.0, None)
    assert parse_rate("half") == (None, 0.5)
    for bad in ("0", "-5", "nan", "inf", "fast"):
        with pytest.raises(ValueError):
            parse_rate(bad)


async def test_a_small_open_loop_phase_against_a_real_server_reports_every_request(tmp_path: Path) -> None:
    # The server runs in this process: name it as the suite's "wallet" for the CPU accounting.
    write_pids(tmp_path, {"wallet": [os.getpid()]})
    running = await create_server(PlatformSettings(port=0, tokens_json=TOKENS), SPEC)
    await running.set_serving(True)
    try:
        targets = SuiteTargets(ports={"wallet": running.port}, tokens={})

        def measure(rate: float | None) -> Result:
            # Due at k / 40 s; the window [0.11, 0.61) holds k = 5 .. 24, away from float boundaries.
            return run_scenario(
                targets, "wallet", health_scenario("wallet"), concurrency=4, processes=2, warmup=0.11,
                duration=0.5, connections=1, cpu=SuiteCpu(tmp_path), rate=rate, max_in_flight=8,
            )

        health = await asyncio.to_thread(measure, None)
        opened = await asyncio.to_thread(measure, 40.0)
    finally:
        await running.stop(0)
    relate_to_health(opened, health)
    # 40/s over the 0.5 s window: 20 requests due, each accounted for as answered, failed, dropped
    # or unfinished (the split between them depends on the machine, the total does not).
    assert opened.extra["intended"] == 20
    assert opened.calls + sum(opened.errors.values()) + opened.dropped + opened.unfinished == 20
    assert opened.offered_rate == 40.0 and opened.scenario == "health_check@wallet open@40/s"
    assert opened.calls > 0 and opened.p50_ms <= opened.p90_ms <= opened.p99_ms <= opened.max_ms
    assert opened.ratio_to_health is None and opened.max_send_lag_ms is not None
    table = format_table([health, opened]).splitlines()
    assert table[0].split()[:12] == [
        "scenario", "target", "calls/s", "events/s", "p50", "ms", "p90", "ms", "p99", "ms", "max", "ms"
    ]
    open_section = table.index("Open loop (latency from the intended send time; counts of the measured window):")
    assert table[open_section + 1].split()[:4] == ["health_check@wallet", "open@40/s", "offered", "40.0/s"]
    # Thousands of closed-loop Health/Checks cost this process measurable CPU; the open loop's few
    # may fall under the accounting's threshold, but its row is there either way.
    cpu = next(i for i, line in enumerate(table) if line.startswith("CPU per call by process"))
    assert table[cpu + 1].split()[:2] == ["health_check@wallet", "wallet"]
    assert table[cpu + 2].split()[:2] == ["health_check@wallet", "open@40/s"]
    summary = format_summary([health, opened]).splitlines()
    assert "p99" in summary[2] and "p99" not in summary[1]
