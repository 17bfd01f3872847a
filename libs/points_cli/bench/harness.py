"""`points bench`: gRPC load from several processes against a running suite.

Closed loop (the default): each scenario runs `concurrency` loops split over `processes`
load-generator processes for a fixed duration (after a warm-up that is not recorded). Every
loop issues one call at a time, so `concurrency` is the number of requests in flight: the
maximum rate. Open loop (`rate`, `bench/openloop.py`): requests leave at fixed intended times
and latency counts from them, so percentiles mean what a caller at that rate would see.

The Health/Check baseline runs on the same server with the same generator, in the same run, so
ratios compare like with like; every process's CPU per call is also given in units of one
Health/Check's CPU on that server.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import math
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

from points_cli.bench import floor, h2load, openloop
from points_cli.bench.cpu import SuiteCpu, in_health_checks, per_call_ms
from points_cli.bench.openloop import Outcome, Percentiles
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
    p90_ms: float = math.nan
    max_ms: float = math.nan
    # Open loop only (bench/openloop.py): the rate sent at fixed times, and the requests of the
    # measured window that were not sent (in-flight cap full), sent late, or never answered.
    offered_rate: float | None = None
    dropped: int = 0
    late: int = 0
    unfinished: int = 0
    max_send_lag_ms: float | None = None


def load_scenarios(group: str) -> list[Scenario]:
    module = importlib.import_module(f"points_cli.bench.{group}")
    return list(module.SCENARIOS)


def _find(group: str, name: str) -> Scenario:
    if name.startswith(HEALTH):
        return health_scenario(name.removeprefix(HEALTH))
    return next(s for s in load_scenarios(group) if s.name == name)


@dataclass(frozen=True)
class _Job:
    targets: SuiteTargets
    group: str
    scenario: str
    run_id: str
    worker: int
    loops: int  # closed loop: requests in flight; open loop: the in-flight cap
    connections: int
    warmup: float
    duration: float
    rate: float | None = None  # open loop: the whole run's requests per second
    workers: int = 1


def _worker(job: _Job) -> Outcome:
    # uvloop and the services' GC settings: the generator shares the 2 cores with the servers, so
    # it should cost as little as it can.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    scenario = _find(job.group, job.scenario)
    if job.rate is not None:
        return uvloop.run(_drive_open(job, scenario))
    return uvloop.run(
        _drive(job.targets, scenario, job.run_id, job.worker, job.loops, job.connections, job.warmup, job.duration)
    )


async def _drive_open(job: _Job, scenario: Scenario) -> Outcome:
    assert job.rate is not None
    contexts = [BenchContext(job.targets, job.run_id, job.worker) for _ in range(max(1, job.connections))]
    try:
        calls = [await scenario.build(ctx) for ctx in contexts]
        start = time.perf_counter()
        return await openloop.drive(
            calls, rate=job.rate, worker=job.worker, workers=job.workers, max_in_flight=job.loops, start=start,
            record_from=start + job.warmup, stop_at=start + job.warmup + job.duration,
        )
    finally:
        for ctx in contexts:
            await ctx.close()


async def _drive(
    targets: SuiteTargets, scenario: Scenario, run_id: str, worker: int, loops: int, connections: int, warmup: float,
    duration: float,
) -> Outcome:
    # Each connection is its own context (channels are per context); the loops take turns. Several
    # connections let a service with several worker processes (SO_REUSEPORT) spread them out.
    contexts = [BenchContext(targets, run_id, worker) for _ in range(max(1, min(connections, loops)))]
    calls = [await scenario.build(ctx) for ctx in contexts]
    outcome = Outcome()
    start = time.perf_counter()
    record_from = start + warmup
    stop_at = record_from + duration

    async def loop(index: int) -> None:
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
                    outcome.errors[exc.code().name] += 1
            ended = time.perf_counter()
            outcome.completed += ok
            if ok and began >= record_from and ended <= stop_at:
                outcome.latencies.append((ended - began) * 1000)
            seq += loops

    try:
        await asyncio.gather(*(loop(i) for i in range(loops)))
    finally:
        for ctx in contexts:
            await ctx.close()
    return outcome


def run_scenario(
    targets: SuiteTargets, group: str, scenario: Scenario, *, concurrency: int, processes: int, warmup: float,
    duration: float, connections: int = 4, cpu: SuiteCpu | None = None, wal_url: str | None = None,
    rate: float | None = None, max_in_flight: int = 256, label: str | None = None,
) -> Result:
    """Closed loop at `concurrency` in flight, or, given `rate`, open loop at that many requests
    per second with at most `max_in_flight` in flight (both split over the processes)."""
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
    in_flight = concurrency if rate is None else max_in_flight
    per_process = [in_flight // processes + (1 if i < in_flight % processes else 0) for i in range(processes)]
    jobs = [
        _Job(targets, group, scenario.name, run_id, worker, loops, connections, warmup, duration, rate, processes)
        for worker, loops in enumerate(per_process)
        if loops
    ]
    if rate is not None and len(jobs) < processes:
        raise ValueError("max_in_flight must be at least the number of processes")
    before = cpu.snapshot() if cpu else {}
    wal_start = floor.wal_position(wal_url) if wal_url else None
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        outcomes = pool.map(_worker, jobs)
    after = cpu.snapshot() if cpu else {}
    latencies = [lat for outcome in outcomes for lat in outcome.latencies]
    errors: Counter[str] = Counter()
    for outcome in outcomes:
        errors.update(outcome.errors)
    unfinished = sum(o.unfinished for o in outcomes)
    calls = len(latencies) - unfinished
    completed = sum(o.completed for o in outcomes)
    events = completed * scenario.events_per_call
    wal = floor.wal_per_event(wal_url, wal_start, events) if wal_url and wal_start else None
    spread = Percentiles.of(latencies)
    return Result(
        scenario=label or (scenario.name if rate is None else f"{scenario.name} open@{rate:g}/s"),
        target=scenario.target,
        calls=calls,
        errors=dict(errors),
        seconds=duration,
        calls_per_second=calls / duration,
        events_per_second=calls * scenario.events_per_call / duration,
        p50_ms=spread.p50,
        p99_ms=spread.p99,
        concurrency=in_flight,
        processes=processes,
        p90_ms=spread.p90,
        max_ms=spread.max,
        offered_rate=rate,
        dropped=sum(o.dropped for o in outcomes),
        late=sum(o.late for o in outcomes),
        unfinished=unfinished,
        max_send_lag_ms=max(o.max_send_lag_ms for o in outcomes) if rate is not None else None,
        extra={
            "mean_ms": statistics.fmean(latencies) if latencies else None,
            "intended": sum(o.intended for o in outcomes) if rate is not None else None,
            # CPU of each suite process per call (events_per_call events), warm-up included.
            "cpu_ms_per_call": per_call_ms(before, after, completed),
            # Over the whole server (every database): all the WAL one event costs, warm-up included.
            "wal_records_per_event": wal[0] if wal else None,
            "wal_bytes_per_event": wal[1] if wal else None,
            "wal_records_per_call": wal[0] * scenario.events_per_call if wal else None,
            "wal_bytes_per_call": wal[1] * scenario.events_per_call if wal else None,
        },
    )


Measure = Callable[[Scenario, float | None, str | None], Result]  # (scenario, open-loop rate, label)


def measure_scenario(
    measure: Measure, scenario: Scenario, *, rate: float | None, rate_fraction: float | None, floor: Result | None
) -> list[Result]:
    """The closed loop (with its ratio to the floor), the open loop at `rate`, or both: the open
    loop at `rate_fraction` of the closed loop's rate (none when the closed loop finished no call)."""
    if rate is not None:
        return [measure(scenario, rate, None)]
    closed = measure(scenario, None, None)
    if floor is not None and floor.events_per_second:
        closed.ratio_to_floor = closed.events_per_second / floor.events_per_second
    if rate_fraction is None or closed.calls_per_second <= 0:
        return [closed]
    label = f"{scenario.name} open@{rate_fraction:g}max"
    return [closed, measure(scenario, rate_fraction * closed.calls_per_second, label)]


def relate_to_health(result: Result, health: Result) -> None:
    """The scenario against its round's Health/Check on the same server: the rate ratio (closed
    loop only: an open loop's rate is the one it was told) and every process's CPU per call in
    Health/Checks."""
    base = health.calls_per_second
    if result.offered_rate is None:
        result.ratio_to_health = result.calls_per_second / base if base else None
    health_ms = (health.extra.get("cpu_ms_per_call") or {}).get(health.target)
    result.extra["cpu_hc_per_call"] = in_health_checks(result.extra.get("cpu_ms_per_call") or {}, health_ms)


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
    wal_url: str | None = None,
    rate: float | None = None,
    rate_fraction: float | None = None,
    max_in_flight: int = 256,
) -> list[Result]:
    """Each round measures Health/Check on every target (and, given `floor_url`, the PostgreSQL
    floor of each workload), then each scenario against its own round's baselines: the machine's
    speed drifts within minutes, so rounds interleave them.

    Scenarios run closed loop; given `rate`, open loop at that rate instead; given
    `rate_fraction`, closed loop and then open loop at that fraction of the closed loop's rate.
    WAL figures come from `wal_url` (a database with pg_walinspect on the suite's server; the
    floor's, `floor_url`, when only that is given)."""
    if rate is not None and rate_fraction is not None:
        raise ValueError("give a rate or a fraction of the measured maximum, not both")
    wal_url = wal_url or floor_url
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
        def measure(scenario: Scenario, rate: float | None, label: str | None) -> Result:
            return run_scenario(
                targets, group, scenario, concurrency=concurrency, processes=processes, warmup=warmup,
                duration=duration, connections=connections, cpu=cpu, wal_url=wal_url, rate=rate,
                max_in_flight=max_in_flight, label=label,
            )

        for scenario in scenarios:
            measured = measure_scenario(
                measure, scenario, rate=rate, rate_fraction=rate_fraction, floor=floors.get(scenario.workload)
            )
            for result in measured:
                relate_to_health(result, baselines[scenario.target])
            results.extend(measured)
        for baseline in baselines.values():
            own = baseline.extra.get("cpu_ms_per_call") or {}
            baseline.extra["cpu_hc_per_call"] = in_health_checks(own, own.get(baseline.target))
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
            "wal_records_per_call": _times(measured.wal_records_per_event, floor.BATCH),
            "wal_bytes_per_call": _times(measured.wal_bytes_per_event, floor.BATCH),
        },
    )


def _times(value: float | None, factor: int) -> float | None:
    return value * factor if value is not None else None


def format_table(results: list[Result]) -> str:
    w = max([24] + [len(r.scenario) + 1 for r in results])
    header = (
        f"{'scenario':<{w}}{'target':<12}{'calls/s':>10}{'events/s':>11}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'x health':>10}{'x floor':>9}  errors"
    )
    lines = [header, "-" * len(header)]
    if any(r.scenario.startswith(H2LOAD) for r in results):
        lines.insert(0, f"(an {H2LOAD}<service> row's x health: our generator's Health/Check rate over h2load's)")
    for r in results:
        lines.append(
            f"{r.scenario:<{w}}{r.target:<12}{r.calls_per_second:>10.0f}{r.events_per_second:>11.0f}"
            f"{r.p50_ms:>9.1f}{r.p90_ms:>9.1f}{r.p99_ms:>9.1f}{r.max_ms:>9.1f}{_ratio(r.ratio_to_health):>10}"
            f"{_ratio(r.ratio_to_floor):>9}  {_failures(r)}"
        )
    opened = [r for r in results if r.offered_rate is not None]
    if opened:
        lines += ["", "Open loop (latency from the intended send time; counts of the measured window):"]
        for r in opened:
            lines.append(
                f"  {r.scenario:<{w}}offered {r.offered_rate:.1f}/s  intended {r.extra.get('intended')}"
                f"  answered {r.calls}  dropped {r.dropped}  unfinished {r.unfinished}"
                f"  late {r.late} (max send lag {r.max_send_lag_ms or 0:.1f} ms)"
            )
    # h2load's rows have no accounting of their own: the server's CPU under h2load is not read.
    costs = [(r, r.extra["cpu_ms_per_call"]) for r in results if "cpu_ms_per_call" in r.extra]
    if any(cost for _, cost in costs):
        lines += [
            "",
            "CPU per call by process, ms and (HC) in Health/Checks' CPU on the measured server, same round"
            " (the two cores are shared by all of them and the load generator):",
        ]
        for r, cost in costs:
            units = r.extra.get("cpu_hc_per_call") or {}
            parts = "  ".join(
                f"{proc} {ms:.3f}" + (f" ({units[proc]:.1f})" if proc in units else "")
                for proc, ms in sorted(cost.items())
            )
            total = f"sum {sum(cost.values()):.3f}" + (f" ({sum(units.values()):.1f} HC)" if units else "")
            lines.append(f"  {r.scenario:<{w}}{parts}  ({total})" if cost else f"  {r.scenario:<{w}}{UNMEASURED}")
    wal = [r for r in results if r.extra.get("wal_records_per_event") is not None]
    if wal:
        lines += ["", "WAL per call and per event (the whole PostgreSQL server, warm-up included):"]
        for r in wal:
            per_call = r.extra.get("wal_records_per_call"), r.extra.get("wal_bytes_per_call")
            lines.append(
                f"  {r.scenario:<{w}}per call: records {_number(per_call[0], '.2f')}"
                f"  bytes {_number(per_call[1], '.0f')}   per event: records {r.extra['wal_records_per_event']:.2f}"
                f"  bytes {r.extra['wal_bytes_per_event']:.0f}"
            )
    return "\n".join(lines)


UNMEASURED = "no process spent the 0.05 s of CPU the accounting resolves (bench/cpu.py)"


def _failures(r: Result) -> str:
    """Errors by status, and the open loop's requests that were dropped or never answered."""
    counted = dict(r.errors)
    if r.dropped:
        counted["dropped"] = r.dropped
    if r.unfinished:
        counted["unfinished"] = r.unfinished
    return str(counted) if counted else ""


def _number(value: float | None, fmt: str) -> str:
    return f"{value:{fmt}}" if value is not None else "-"


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
        if any(r.offered_rate is not None for r in rs):
            line += f"  p99 ms {spread([r.p99_ms for r in rs], '.1f')}"
        lines.append(line)
    return "\n".join(lines)


def to_json(results: list[Result]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
