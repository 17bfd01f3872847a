"""Open-loop load: requests leave at fixed intended times, whatever the replies do.

A closed loop sends the next request only when a reply came back, so a server that stalls for
100 ms is sent nothing during the stall and the stall shows up as one slow call (coordinated
omission); at 64 in flight its p99 is set by Little's law, not by the code. Here each
load-generator process sends its share of `rate` requests per second at times fixed before the
run, and every latency is taken from the request's *intended* send time: a stall, or a
generator that fell behind, counts against every request it delayed.

In-flight requests are capped so a stalled server cannot grow the generator without bound; a
request due while the cap is full is not sent and is counted as dropped, never silently.
Requests still unanswered when the drain ends are counted as unfinished and enter the
percentiles with their age at that moment (a lower bound).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import grpc

Call = Callable[[int], Awaitable[None]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A send this far behind its intended time means the generator itself fell behind (its process
# was not scheduled, or its loop was busy); the latency still counts from the intended time.
LATE_MS = 5.0
# How long to wait after the last intended send for the calls still in flight.
DRAIN_SECONDS = 30.0


def send_offsets(rate: float, worker: int, workers: int) -> Iterator[float]:
    """Seconds after the start at which `worker` (of `workers` processes sharing `rate` requests
    per second) sends: every `workers`-th slot of the whole schedule, so together they are evenly
    spaced at 1 / rate."""
    if rate <= 0 or not 0 <= worker < workers:
        raise ValueError("rate must be positive and worker one of the workers")
    return ((worker + j * workers) / rate for j in itertools.count())


def latency_ms(intended: float, ended: float) -> float:
    """Latency as the caller of a rate-driven system sees it: from when the request was due."""
    return (ended - intended) * 1000


def percentile(sorted_values: list[float], q: float) -> float:
    """The value at rank round(q * (n - 1)) of sorted values; NaN when there are none."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        ordered = sorted(values)
        return cls(
            percentile(ordered, 0.50), percentile(ordered, 0.90), percentile(ordered, 0.99),
            ordered[-1] if ordered else math.nan,
        )


@dataclass
class Outcome:
    """What one generator process saw (a closed loop fills the first two and the last). The
    recorded counts cover only requests intended inside the measured window; `completed` counts
    every successful call, warm-up included, since the servers' CPU is measured over the whole run."""

    latencies: list[float] = field(default_factory=list)  # ms from the intended (closed loop: actual) send time
    errors: Counter[str] = field(default_factory=Counter)  # recorded
    intended: int = 0  # recorded requests due
    dropped: int = 0  # recorded requests not sent: the in-flight cap was full
    late: int = 0  # recorded requests sent more than LATE_MS after their intended time
    unfinished: int = 0  # recorded requests unanswered when the drain ended
    max_send_lag_ms: float = 0.0
    completed: int = 0


async def drive(
    calls: list[Call], *, rate: float, worker: int, workers: int, max_in_flight: int, start: float,
    record_from: float, stop_at: float, drain_seconds: float = DRAIN_SECONDS, clock: Clock = time.perf_counter,
    sleep: Sleep = asyncio.sleep,
) -> Outcome:
    """Send this worker's share of `rate` per second from `start` until `stop_at`, then wait for
    the answers; calls take turns over `calls` (one per connection)."""
    outcome = Outcome()
    in_flight: dict[asyncio.Task[None], float] = {}

    def recorded(intended: float) -> bool:
        return record_from <= intended < stop_at

    async def send(seq: int, intended: float) -> None:
        lag = latency_ms(intended, clock())
        keep = recorded(intended)
        if keep:
            outcome.max_send_lag_ms = max(outcome.max_send_lag_ms, lag)
            outcome.late += lag > LATE_MS
        try:
            await calls[seq % len(calls)](seq)
        except grpc.aio.AioRpcError as exc:
            if keep:
                outcome.errors[exc.code().name] += 1
            return
        # A scenario's own check that failed (a redemption that ended cancelled) is a failed
        # request like an error status: counted, not lost with its task.
        except Exception as exc:  # noqa: BLE001
            if keep:
                outcome.errors[type(exc).__name__] += 1
            return
        ended = clock()
        outcome.completed += 1
        if keep:
            outcome.latencies.append(latency_ms(intended, ended))

    for seq, offset in enumerate(send_offsets(rate, worker, workers)):
        intended = start + offset
        if intended >= stop_at:
            break
        if (wait := intended - clock()) > 0:
            await sleep(wait)
        outcome.intended += recorded(intended)
        if len(in_flight) >= max_in_flight:
            outcome.dropped += recorded(intended)
            continue
        task = asyncio.create_task(send(seq, intended))
        in_flight[task] = intended
        task.add_done_callback(in_flight.pop)
    if in_flight:
        _, pending = await asyncio.wait(list(in_flight), timeout=drain_seconds)
        now = clock()
        for task in pending:
            intended = in_flight[task]
            task.cancel()
            if recorded(intended):
                outcome.unfinished += 1
                outcome.latencies.append(latency_ms(intended, now))
        await asyncio.gather(*pending, return_exceptions=True)
    return outcome


def parse_rate(text: str) -> tuple[float | None, float | None]:
    """`--rate`: requests per second, or `half` (half the closed-loop maximum): (rate, fraction)."""
    if text == "half":
        return None, 0.5
    problem = f"--rate takes a positive number of requests per second or 'half', not {text!r}"
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(problem) from None
    if not rate > 0 or math.isinf(rate):
        raise ValueError(problem)
    return rate, None
