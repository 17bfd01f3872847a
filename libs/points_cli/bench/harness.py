"""`points bench`: closed-loop gRPC load from several processes against a running suite.

Each scenario runs `concurrency` loops split over `processes` load-generator processes for a
fixed duration (after a warm-up that is not recorded). Every loop issues one call at a time,
so `concurrency` is the number of requests in flight. The Health/Check baseline runs on the
same server with the same generator, in the same run, so ratios compare like with like.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import multiprocessing
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from points_cli.bench import floor, h2load
from points_cli.bench.cpu import SuiteCpu, per_call_ms
from points_cli.targets import CallerContext, SuiteTargets
from points_platform.server import GC_YOUNG_THRESHOLD

Call = Callable[[int], Awaitable[None]]


class BenchContext(CallerContext):
    """A worker's view of the suite; `worker` is -1 in setup."""

    def __init__(self, targets: SuiteTargets, run_id: str, worker: int) -> None:
        super().__init__(targets)
        self.run_id = run_id
        self.worker = worker


@dataclass(frozen=True)
class Scenario:
    name: str
    target: str  # the service whose server is measured (and whose health is the baseline)
    build: Callable[[BenchContext], Awaitable[Call]]
    setup: Callable[[BenchContext], Awaitable[None]] | None = None
    events_per_call: int = 1
    workload: str = "fresh"  # which floor its events compare with (bench/floor.py)


HEALTH = "health_check@"


def health_scenario(target: str) -> Scenario:
    """The baseline: grpc.health.v1.Health/Check on the measured server."""

    async def build(ctx: BenchContext) -> Call:
        # types-grpcio-health-checking declares no methods on HealthStub.
        stub: Any = health_pb2_grpc.HealthStub(ctx.channel(target))
        request = health_pb2.HealthCheckRequest()

        async def call(i: int) -> None:
            await stub.Check(request)

        return call

    return Scenario(name=HEALTH + target, target=target, build=build)


@dataclass
class Result:
    scenario: str
    target: str
    calls: int
    errors: dict[str, int]
    seconds: float
    calls_per_second: float
    events_per_second: float
    p50_ms: float
    p99_ms: float
    concurrency: int
    processes: int
    ratio_to_health: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    round: int = 1
    ratio_to_floor: float | None = None


def load_scenarios(group: str) -> list[Scenario]:
    module = importlib.import_module(f"points_cli.bench.{group}")
    return list(module.SCENARIOS)


def _find(group: str, name: str) -> Scenario:
    if name.startswith(HEALTH):
        return health_scenario(name.removeprefix(HEALTH))
    return next(s for s in load_scenarios(group) if s.name == name)


Outcome = tuple[int, dict[str, int], list[float], int]  # recorded calls, errors, latencies, all calls


def _worker(args: tuple[SuiteTargets, str, str, str, int, int, int, float, float]) -> Outcome:
    targets, group, name, run_id, worker, loops, connections, warmup, duration = args
    # uvloop and the services' GC settings: the generator shares the 2 cores with the servers, so
    # it should cost as little as it can.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    return uvloop.run(_drive(targets, _find(group, name), run_id, worker, loops, connections, warmup, duration))


async def _drive(
    targets: SuiteTargets, scenario: Scenario, run_id: str, worker: int, loops: int, connections: int, warmup: float,
    duration: float,
) -> Outcome:
    # Each connection is its own context (channels are per context); the loops take turns. Several
    # connections let a service with several worker processes (SO_REUSEPORT) spread them out.
    contexts = [BenchContext(targets, run_id, worker) for _ in range(max(1, min(connections, loops)))]
    calls = [await scenario.build(ctx) for ctx in contexts]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    completed = 0  # warm-up included: the servers' CPU is measured over the whole run
    start = time.perf_counter()
    record_from = start + warmup
    stop_at = record_from + duration

    async def loop(index: int) -> None:
        nonlocal completed
        call = calls[index % len(calls)]
        seq = index
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            try:
                await call(seq)
                ok = True
            except grpc.aio.AioRpcError as exc:
                ok = False
                if began >= record_from:
                    errors[exc.code().name] += 1
            ended = time.perf_counter()
            completed += ok
            if ok and began >= record_from and ended <= stop_at:
                latencies.append((ended - began) * 1000)
            seq += loops

    try:
        await asyncio.gather(*(loop(i) for i in range(loops)))
    finally:
        for ctx in contexts:
            await ctx.close()
    return len(latencies), dict(errors), latencies, completed


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_scenario(
    targets: SuiteTargets, group: str, scenario: Scenario, *, concurrency: int, processes: int, warmup: float,
    duration: float, connections: int = 4, cpu: SuiteCpu | None = None, wal_url: str | None = None,
) -> Result:
    run_id = f"{scenario.name}-{uuid.uuid4().hex[:8]}"
    if scenario.setup is not None:

        async def setup() -> None:
            ctx = BenchContext(targets, run_id, -1)
            try:
                assert scenario.setup is not None
                await scenario.setup(ctx)
            finally:
                await ctx.close()

        asyncio.run(setup())
    per_process = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    jobs = [
        (targets, group, scenario.name, run_id, worker, loops, connections, warmup, duration)
        for worker, loops in enumerate(per_process)
        if loops
    ]
    before = cpu.snapshot() if cpu else {}
    wal_start = floor.wal_position(wal_url) if wal_url else None
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        outcomes = pool.map(_worker, jobs)
    after = cpu.snapshot() if cpu else {}
    latencies = sorted(lat for _, _, lats, _ in outcomes for lat in lats)
    errors: Counter[str] = Counter()
    for _, errs, _, _ in outcomes:
        errors.update(errs)
    calls = len(latencies)
    all_events = sum(done for *_, done in outcomes) * scenario.events_per_call
    wal = floor.wal_per_event(wal_url, wal_start, all_events) if wal_url and wal_start else None
    return Result(
        scenario=scenario.name,
        target=scenario.target,
        calls=calls,
        errors=dict(errors),
        seconds=duration,
        calls_per_second=calls / duration,
        events_per_second=calls * scenario.events_per_call / duration,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        concurrency=concurrency,
        processes=processes,
        extra={
            "mean_ms": statistics.fmean(latencies) if latencies else None,
            # CPU of each suite process per call (events_per_call events), warm-up included.
            "cpu_ms_per_call": per_call_ms(before, after, sum(done for *_, done in outcomes)),
            # Over the whole server (every database): all the WAL one event costs, warm-up included.
            "wal_records_per_event": wal[0] if wal else None,
            "wal_bytes_per_event": wal[1] if wal else None,
        },
    )


def run_group(
    targets: SuiteTargets,
    group: str,
    *,
    only: list[str] | None = None,
    concurrency: int = 64,
    processes: int = 2,
    connections: int = 4,
    warmup: float = 1.0,
    duration: float = 10.0,
    cpu: SuiteCpu | None = None,
    rounds: int = 1,
    floor_url: str | None = None,
) -> list[Result]:
    """Each round measures Health/Check on every target (and, given `floor_url`, the PostgreSQL
    floor of each workload), then each scenario against its own round's baselines: the machine's
    speed drifts within minutes, so rounds interleave them."""
    scenarios = load_scenarios(group)
    if only:
        scenarios = [s for s in scenarios if s.name in only]
    results: list[Result] = []
    for number in range(1, rounds + 1):
        first = len(results)
        baselines: dict[str, Result] = {}
        for target in dict.fromkeys(s.target for s in scenarios):
            baselines[target] = run_scenario(
                targets, group, health_scenario(target), concurrency=concurrency, processes=processes,
                warmup=warmup, duration=duration, connections=connections, cpu=cpu,
            )
            results.append(baselines[target])
            if h2load.available():
                results.append(h2load_baseline(targets, target, baselines[target], duration, concurrency))
        floors: dict[str, Result] = {}
        if floor_url:
            for workload in dict.fromkeys(s.workload for s in scenarios):
                floors[workload] = run_floor(floor_url, workload, duration=duration, cpu=cpu)
                results.append(floors[workload])
        for scenario in scenarios:
            result = run_scenario(
                targets, group, scenario, concurrency=concurrency, processes=processes, warmup=warmup,
                duration=duration, connections=connections, cpu=cpu, wal_url=floor_url,
            )
            base = baselines[scenario.target].calls_per_second
            result.ratio_to_health = result.calls_per_second / base if base else None
            if scenario.workload in floors and floors[scenario.workload].events_per_second:
                result.ratio_to_floor = result.events_per_second / floors[scenario.workload].events_per_second
            results.append(result)
        for result in results[first:]:
            result.round = number
    return results


H2LOAD = "h2load:" + HEALTH


def h2load_baseline(targets: SuiteTargets, target: str, ours: Result, duration: float, concurrency: int) -> Result:
    """h2load's Health/Check on the same server; its "x health" is our generator's rate over it."""
    rate = h2load.health_check_rate(targets.address(target), duration=duration, concurrency=concurrency)
    return Result(
        scenario=H2LOAD + target, target=target, calls=round(rate * duration), errors={}, seconds=duration,
        calls_per_second=rate, events_per_second=rate, p50_ms=float("nan"), p99_ms=float("nan"),
        concurrency=concurrency, processes=1, ratio_to_health=ours.calls_per_second / rate if rate else None,
    )


def run_floor(url: str, workload: str, *, duration: float, cpu: SuiteCpu | None = None) -> Result:
    """The floor as a Result: a "call" is one batch of floor.BATCH events."""
    before = cpu.snapshot() if cpu else {}
    measured = asyncio.run(floor.measure(url, workload, duration=duration))
    after = cpu.snapshot() if cpu else {}
    batches = measured.events // floor.BATCH
    return Result(
        scenario=f"floor_{workload}", target="postgres", calls=batches, errors={}, seconds=measured.seconds,
        calls_per_second=batches / measured.seconds, events_per_second=measured.events_per_second,
        p50_ms=float("nan"), p99_ms=float("nan"), concurrency=floor.CONNECTIONS, processes=1,
        extra={
            "cpu_ms_per_call": per_call_ms(before, after, batches),
            "wal_records_per_event": measured.wal_records_per_event,
            "wal_bytes_per_event": measured.wal_bytes_per_event,
        },
    )


def format_table(results: list[Result]) -> str:
    w = max([24] + [len(r.scenario) + 1 for r in results])
    header = (
        f"{'scenario':<{w}}{'target':<12}{'calls/s':>10}{'events/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'x health':>10}"
        f"{'x floor':>9}  errors"
    )
    lines = [header, "-" * len(header)]
    if any(r.scenario.startswith(H2LOAD) for r in results):
        lines.insert(0, f"(an {H2LOAD}<service> row's x health: our generator's Health/Check rate over h2load's)")
    for r in results:
        lines.append(
            f"{r.scenario:<{w}}{r.target:<12}{r.calls_per_second:>10.0f}{r.events_per_second:>11.0f}"
            f"{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{_ratio(r.ratio_to_health):>10}{_ratio(r.ratio_to_floor):>9}"
            f"  {r.errors or ''}"
        )
    costs = [(r.scenario, r.extra.get("cpu_ms_per_call") or {}) for r in results]
    if any(c for _, c in costs):
        lines += ["", "CPU ms per call, by process (the two cores are shared by all of them and the load generator):"]
        for name, cost in costs:
            parts = "  ".join(f"{proc} {ms:.3f}" for proc, ms in sorted(cost.items()))
            lines.append(f"  {name:<{w}}{parts}  (sum {sum(cost.values()):.3f})")
    wal = [r for r in results if r.extra.get("wal_records_per_event") is not None]
    if wal:
        lines += ["", "WAL per event (the whole PostgreSQL server, warm-up included):"]
        for r in wal:
            lines.append(
                f"  {r.scenario:<{w}}records {r.extra['wal_records_per_event']:.2f}"
                f"  bytes {r.extra['wal_bytes_per_event']:.0f}"
            )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def format_summary(results: list[Result]) -> str:
    """Median (min-max) of each scenario over the rounds: what to compare against a target."""
    by_name: dict[str, list[Result]] = {}
    for r in results:
        by_name.setdefault(r.scenario, []).append(r)
    rounds = max(len(rs) for rs in by_name.values())
    lines = [f"Over {rounds} rounds, median (min-max):"]

    def spread(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"

    for name, rs in by_name.items():
        line = f"  {name:<24}events/s {spread([r.events_per_second for r in rs], '.0f')}"
        ratios = [r.ratio_to_health for r in rs if r.ratio_to_health is not None]
        if ratios:
            line += f"  x health {spread(ratios, '.2f')}"
        to_floor = [r.ratio_to_floor for r in rs if r.ratio_to_floor is not None]
        if to_floor:
            line += f"  x floor {spread(to_floor, '.2f')}"
        lines.append(line)
    return "\n".join(lines)


def to_json(results: list[Result]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
