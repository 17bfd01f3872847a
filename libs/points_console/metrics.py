"""The overview's charts from the services' own Prometheus endpoints (the console has no database).

Points earned per hour: earning's `points_earning_points_credited_total` is a counter since each worker
started, so the console reads it (on every overview load and every `metrics_sample_seconds`) and books
each increase to the hour in which it saw it. An increase the console did not see happen (earned before
its first read) lands in the hour of that first read; a counter that went down (a worker restarted)
counts from zero again. Redemptions by state: redemption's `points_redemption_sagas_finished_total`
(terminal states since the workers started) and `points_redemption_sagas_pending` (in flight now).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

POINTS_CREDITED = "points_earning_points_credited"
SAGAS_FINISHED = "points_redemption_sagas_finished"
SAGAS_PENDING = "points_redemption_sagas_pending"
HOURS_SHOWN = 24
READ_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class MetricsSources:
    earning: list[str]
    redemption: list[str]


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=READ_TIMEOUT_SECONDS) as reply:
        return str(reply.read().decode())


async def read_samples(urls: list[str]) -> list[tuple[str, dict[str, str], float]] | None:
    """Every sample of every worker's endpoint; None when any endpoint does not answer."""
    try:
        pages = await asyncio.gather(*(asyncio.to_thread(_fetch, url) for url in urls))
    except OSError:
        return None
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for page in pages for family in text_string_to_metric_families(page) for sample in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
    return sum(value for sample_name, _, value in samples if sample_name in (name, f"{name}_total"))


def by_label(samples: list[tuple[str, dict[str, str], float]], name: str, label: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for sample_name, labels, value in samples:
        if sample_name in (name, f"{name}_total"):
            counts[labels.get(label, "")] = counts.get(labels.get(label, ""), 0.0) + value
    return counts


class HourlyIncrease:
    """Increases of a counter booked to the hour in which they were observed (the last HOURS_SHOWN hours)."""

    def __init__(self) -> None:
        self._last: float | None = None
        self._hours: OrderedDict[datetime, float] = OrderedDict()

    def observe(self, now: datetime, value: float) -> None:
        increase = value if self._last is None or value < self._last else value - self._last
        self._last = value
        hour = now.replace(minute=0, second=0, microsecond=0)
        self._hours[hour] = self._hours.get(hour, 0.0) + increase
        while len(self._hours) > HOURS_SHOWN:
            self._hours.popitem(last=False)

    def hours(self) -> list[tuple[datetime, int]]:
        return [(hour, int(amount)) for hour, amount in self._hours.items()]


async def redemptions_by_state(urls: list[str]) -> dict[str, int] | None:
    samples = await read_samples(urls)
    if samples is None:
        return None
    counts = {state: int(n) for state, n in by_label(samples, SAGAS_FINISHED, "state").items()}
    counts["PENDING"] = int(total(samples, SAGAS_PENDING))
    return dict(sorted(counts.items()))


class Charts:
    """The overview's chart data: the hourly series of earned points and the redemption counts."""

    def __init__(self, sources: MetricsSources, now: Callable[[], datetime]) -> None:
        self.sources = sources
        self.earned = HourlyIncrease()
        self._now = now

    async def sample_earned(self) -> bool:
        """Read the earning counter into the hourly series; False when no endpoint is set or answered."""
        if not self.sources.earning:
            return False
        samples = await read_samples(self.sources.earning)
        if samples is None:
            return False
        self.earned.observe(self._now(), total(samples, POINTS_CREDITED))
        return True

    async def sample_every(self, seconds: float) -> None:
        """Keeps the hourly series current between overview loads (pacing a background read, not a test wait)."""
        while True:
            await self.sample_earned()
            await asyncio.sleep(seconds)

    async def redemptions_by_state(self) -> dict[str, int] | None:
        return await redemptions_by_state(self.sources.redemption) if self.sources.redemption else None
