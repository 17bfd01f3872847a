"""The console's pure parts: the hourly series of a counter, and the raffle replay against the service's draw."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from points.redemption.v1 import redemption_pb2
from points_console.metrics import HOURS_SHOWN, HourlyIncrease, by_label, total
from points_console.pages.raffles import draw_picks, seed_matches
from redemption.domain.raffle import draw_winners

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_increases_are_booked_to_the_hour_they_are_seen_and_a_restart_counts_from_zero() -> None:
    series = HourlyIncrease()
    series.observe(NOON + timedelta(minutes=5), 40)  # earned before the first read: booked to this hour
    series.observe(NOON + timedelta(minutes=50), 100)
    series.observe(NOON + timedelta(hours=1, minutes=1), 130)
    series.observe(NOON + timedelta(hours=1, minutes=2), 7)  # the worker restarted: its counter is new
    assert series.hours() == [(NOON, 100), (NOON + timedelta(hours=1), 37)]


def test_only_the_last_day_is_kept() -> None:
    series = HourlyIncrease()
    for hour in range(HOURS_SHOWN + 3):
        series.observe(NOON + timedelta(hours=hour), hour)
    hours = series.hours()
    assert len(hours) == HOURS_SHOWN and hours[0][0] == NOON + timedelta(hours=3)


def test_samples_are_summed_over_workers_and_labels() -> None:
    samples = [("points_earning_points_credited_total", {}, 5.0), ("points_earning_points_credited_total", {}, 7.0),
               ("points_redemption_sagas_finished_total", {"state": "CANCELLED", "reason": "OUT_OF_STOCK"}, 2.0),
               ("points_redemption_sagas_finished_total", {"state": "CANCELLED", "reason": "INSUFFICIENT_FUNDS"}, 1.0),
               ("points_redemption_sagas_finished_created", {"state": "CANCELLED"}, 1.7e9)]
    assert total(samples, "points_earning_points_credited") == 12
    assert by_label(samples, "points_redemption_sagas_finished", "state") == {"CANCELLED": 3}


def test_the_pages_replay_picks_the_tickets_the_service_draws() -> None:
    seed = bytes(range(32))
    tickets = [f"ticket-{n:02d}" for n in range(9)]
    winners = draw_winners(seed, tickets, 3)
    draw = redemption_pb2.RaffleDraw(seed=seed.hex(), seed_hash=hashlib.sha256(seed).hexdigest(),
                                     ticket_count=len(tickets), winner_entitlement_ids=winners,
                                     winner_user_ids=["u"] * 3)
    remaining = sorted(tickets)
    assert [remaining.pop(pick["position"]) for pick in draw_picks(draw, None)] == winners
    assert [pick["picked"] for pick in draw_picks(draw, list(reversed(tickets)))] == winners
    assert seed_matches(draw) is True
    assert seed_matches(redemption_pb2.RaffleDraw(seed=seed.hex(), seed_hash="0" * 64)) is False
    assert seed_matches(redemption_pb2.RaffleDraw(seed_hash="0" * 64)) is None
