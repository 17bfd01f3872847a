"""The PostgreSQL floor stores exactly what it reports, and the realistic workload has the shape it claims."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg

from points_cli.bench import floor
from points_cli.bench.harness import Result, format_summary, format_table
from points_cli.bench.workload import CHALLENGE_SHARE, MIX, Workload, ZipfUsers
from points_platform.db import asyncpg_dsn
from tests.conftest import NewDatabase


async def test_floor_stores_one_event_row_posting_and_balance_share_per_event(new_database: NewDatabase) -> None:
    url = await new_database("floor")
    for workload in floor.WORKLOADS:
        result = await floor.measure(url, workload, duration=None, batches=30, connections=4)
        assert result.events == 30 * floor.BATCH
        events, postings, posted, balances = await floor.stored_totals(url)
        # Each run starts empty; every reported event left one event row and one posting, and the
        # balances hold exactly what was posted (a hot user's events summed into one row per batch).
        assert (events, postings) == (result.events, result.events)
        assert posted == balances == result.events * floor.POINTS_PER_EVENT
        assert result.events_per_second > 0
        # An event row, a posting, a balance and their index entries: several WAL records each.
        assert result.wal_records_per_event is not None and result.wal_records_per_event > 2
        assert result.wal_bytes_per_event is not None and result.wal_bytes_per_event > 100


async def test_a_wal_position_is_flushed_before_the_window_reads_it(new_database: NewDatabase) -> None:
    # pg_walinspect refuses an end beyond the flushed WAL ("cannot accept future end LSN"): each
    # position must be flushed when it is returned, even after asynchronous commits.
    url = await new_database("walpos")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("CREATE TABLE scribble (n int)")
        for n in range(20):
            await conn.execute(f"SET synchronous_commit = off; INSERT INTO scribble VALUES ({n})")
            position = await asyncio.to_thread(floor.wal_position, url)
            assert await conn.fetchval("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn", position)
    finally:
        await conn.close()


def test_zipf_users_put_the_expected_share_on_the_hottest_user() -> None:
    users = ZipfUsers(seed=7)
    draws = Counter(users.draw(200_000))
    # P(rank 1) = 1 / H(1e6, 1.1) ≈ 0.124: a few users carry a large share, a long tail the rest.
    assert 0.11 < draws[1] / 200_000 < 0.14
    assert draws[1] > draws[2] > draws[10]
    assert len(draws) > 20_000


def test_the_activity_mix_devices_and_challenge_share_follow_the_workload() -> None:
    workload = Workload("w", seed=3)
    activities = workload.activities(50_000)
    kinds = Counter(a.kind for a in activities)
    for kind, share in MIX.items():
        assert abs(kinds[kind] / 50_000 - share) < 0.01, kind
    assert {a.device.rsplit("-", 1)[1] for a in activities} == {"0", "1"}
    assert len({a.target for a in activities}) == 50_000
    joined = sum(workload.joined_challenge(rank) for rank in range(1, 20_001))
    assert abs(joined / 20_000 - CHALLENGE_SHARE) < 0.01
    # Joining is a property of the user: the same answer every time.
    assert [workload.joined_challenge(r) for r in range(1, 50)] == [workload.joined_challenge(r) for r in range(1, 50)]


def test_earning_figures_are_shown_as_a_ratio_to_the_floor() -> None:
    def result(name: str, events: float, to_floor: float | None, number: int) -> Result:
        return Result(
            name, "earning", 1, {}, 1.0, events / 100, events, 1.0, 2.0, 64, 2, 0.5,
            round=number, ratio_to_floor=to_floor,
        )

    rounds = [result("record_activities_100", 6000, 0.10, 1), result("record_activities_100", 9000, 0.15, 2)]
    assert format_table(rounds[:1]).splitlines()[0].split()[-2:] == ["floor", "errors"]
    assert "0.10" in format_table(rounds[:1]).splitlines()[2]
    assert format_summary(rounds).splitlines()[1].split()[-4:] == ["x", "floor", "0.12", "(0.10-0.15)"]
