"""The shared-device rule under review: only accounts that earned count, and concurrent batches see each other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from earning.store.batch import BatchRepository
from points.earning.v1 import earning_pb2 as pb
from points_platform.db import create_engine
from points_platform.group_commit import GroupCommitter
from tests.earning.conftest import ADMIN, APP, StartSuite
from tests.support.rpc import ts
from tests.support.wait import eventually

LIKE, PROGRESS = 2, 7
AWARDED, HELD, REJECTED = 1, 4, 5
LIMIT = 5  # max_accounts_per_device_per_day of the default rules


async def device_accounts(s: object, device: str) -> list[str]:
    async with s.earning.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = await conn.execute(
            text("SELECT user_id FROM device_accounts WHERE device_id = :d ORDER BY user_id"), {"d": device}
        )
        return [r.user_id for r in rows]


async def test_rejected_events_do_not_use_up_the_device(start_suite: StartSuite) -> None:
    s = await start_suite()
    spec = pb.ChallengeSpec(
        name="Closed", start_time=ts(s.clock.now()), end_time=ts(s.clock.now() + timedelta(days=1)),
        multiplier_bps=20000,
    )
    challenge = (
        await s.stub.CreateChallenge(pb.CreateChallengeRequest(request_id="closed", spec=spec), metadata=ADMIN)
    ).challenge
    strangers = [
        s.event(f"stranger{i}", PROGRESS, challenge_id=challenge.challenge_id, device_id="kiosk")
        for i in range(LIMIT + 2)
    ]
    # one by one and as a batch: both paths must leave the device untouched
    singles = [await s.record(e) for e in strangers[:3]]
    batch = (await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=strangers[3:]), metadata=APP)).results
    outcomes = [(r.status, r.rejection_reason) for r in [*singles, *batch]]
    assert outcomes == [(REJECTED, "NOT_A_PARTICIPANT")] * (LIMIT + 2)

    assert await device_accounts(s, "kiosk") == []
    owner = await s.record(s.event("owner", LIKE, target_id="v", device_id="kiosk"))
    assert owner.status == AWARDED and await s.balance("owner") == 2
    assert await device_accounts(s, "kiosk") == ["owner"]


@asynccontextmanager
async def overlapping_batches(s: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Hold each batch after its reads until every other batch in flight has read too or waits on a
    lock in PostgreSQL: concurrent batches overlap for sure (without the device lock, they all read
    the device's accounts before any commits), and with it nobody waits for a lock holder."""
    lock, read = BatchRepository.lock_batch, BatchRepository.read_batch
    flight = {"locking": 0, "read": 0}

    async def lock_batch(*args: Any, **kwargs: Any) -> Any:
        flight["locking"] += 1
        try:
            return await lock(*args, **kwargs)
        except BaseException:
            flight["locking"] -= 1
            raise

    async def others_read_or_wait() -> bool:
        async with watcher.connect() as conn:  # not the service's pool: the batches may hold all of it
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ))).scalar_one()
        return bool(flight["locking"] - flight["read"] <= waiting)

    async def read_batch(*args: Any, **kwargs: Any) -> Any:
        try:
            return await read(*args, **kwargs)
        finally:
            flight["read"] += 1
            await eventually(others_read_or_wait, what="the other batches read or wait on a lock")

    watcher = create_engine(s.earning_settings.database_url)
    monkeypatch.setattr(BatchRepository, "lock_batch", lock_batch)
    monkeypatch.setattr(BatchRepository, "read_batch", read_batch)
    try:
        yield
    finally:
        monkeypatch.undo()
        await watcher.dispose()


async def test_first_time_accounts_racing_on_one_device_earn_at_most_the_limit(
    start_suite: StartSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await start_suite()
    for i in range(LIMIT - 1):  # the device has one place left
        assert (await s.record(s.event(f"early{i}", LIKE, target_id="v", device_id="family-tablet"))).status == AWARDED
    # one event per batch, four batches in flight: the calls cannot all land in one coalesced batch
    recorder = s.earning.wiring.recorder
    recorder.coalescer = GroupCommitter(recorder.record, max_batch=1, concurrency=4)
    singles = [s.event(f"solo{i}", LIKE, target_id="v", device_id="family-tablet") for i in range(30)]
    async with overlapping_batches(s, monkeypatch):
        results = await asyncio.gather(*(s.record(e) for e in singles))

    assert sorted(r.status for r in results) == [AWARDED] + [HELD] * 29
    balances = await asyncio.gather(*(s.balance(f"solo{i}") for i in range(30)))
    assert sum(balances) == 2
    assert len(await device_accounts(s, "family-tablet")) == LIMIT - 1 + 30  # held accounts used it too


async def test_concurrent_batches_on_one_device_earn_at_most_the_limit(
    start_suite: StartSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await start_suite()
    batches = [
        pb.RecordActivitiesRequest(
            events=[
                s.event(f"b{n}u{i}", LIKE, target_id="v", device_id="kiosk-2"),
                s.event(f"b{n}own", LIKE, target_id=f"own{i}"),  # each batch's other device: locks stay sorted
            ]
        )
        for n in range(8)
        for i in range(2)
    ]
    async with overlapping_batches(s, monkeypatch):
        replies = await asyncio.gather(*(s.stub.RecordActivities(b, metadata=APP, timeout=60) for b in batches))

    on_device = [reply.results[0] for reply in replies]
    assert sorted(r.status for r in on_device) == [AWARDED] * LIMIT + [HELD] * (len(batches) - LIMIT)
    assert all(reply.results[1].status == AWARDED for reply in replies)
