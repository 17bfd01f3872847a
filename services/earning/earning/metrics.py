"""Earning's own metrics (docs/earning.md), exported by the platform's Prometheus endpoint."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("points_earning_events_total", "Events evaluated", ["status"])
PHASE = Histogram(
    "points_earning_record_phase_seconds", "Time of a recorded batch per phase (decide: the transaction, "
    "credit: wallet call and outbox update)", ["phase"],
)
BATCH_SIZE = Histogram(
    "points_earning_batch_events", "Events per recorded batch (coalesced single events included)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
)
POINTS_CREDITED = Counter("points_earning_points_credited_total", "Points credited to the wallet by earning")
CREDITS_PENDING = Gauge("points_earning_credits_pending", "Credits decided but not yet confirmed by the wallet")
CREDITS_FAILED = Gauge(
    "points_earning_credits_failed", "Credits the wallet refused for good, waiting in the dead letter for an operator"
)
CREDITS_DEAD_LETTERED = Counter(
    "points_earning_credits_dead_lettered_total", "Credits moved to the dead letter, by the wallet's refusal",
    ["reason"],
)
