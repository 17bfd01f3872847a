"""The account-sharing rule: one account on too many devices in a day is held for review, like a shared device."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from points.earning.v1 import earning_pb2 as pb
from points_platform.group_commit import GroupCommitter
from tests.earning.conftest import ADMIN, APP, StartSuite
from tests.earning.test_device_sharing import overlapping_batches

LIKE = 2
AWARDED, HELD = pb.EVENT_STATUS_AWARDED, pb.EVENT_STATUS_HELD_FOR_REVIEW
LIMIT = 4  # max_devices_per_account_per_day of the default rules


async def held_earnings(s: object, user: str) -> list[pb.HeldEarning]:
    reply = await s.stub.ListHeldEarnings(  # type: ignore[attr-defined]
        pb.ListHeldEarningsRequest(user_id=user), metadata=ADMIN, timeout=10
    )
    return list(reply.held_earnings)


async def test_an_account_on_more_devices_than_the_limit_is_held_for_review(start_suite: StartSuite) -> None:
    s = await start_suite()
    events = [s.event("roamer", LIKE, target_id=f"v{i}", device_id=f"phone{i}") for i in range(LIMIT + 2)]
    events += [
        s.event("roamer", LIKE, target_id="again", device_id="phone0"),  # a known device: the account is over
        s.event("roamer", LIKE, target_id="no-device", device_id=""),  # no device: not judged
        s.event("neighbour", LIKE, target_id="v", device_id="phone5"),  # another account: its own count
    ]
    results = (await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=events), metadata=APP)).results
    assert [r.status for r in results] == [AWARDED] * LIMIT + [HELD] * 3 + [AWARDED] * 2
    hold = results[LIMIT]
    assert hold.breakdown[-1].rule == pb.RULE_KIND_ACCOUNT_SHARING_HOLD and hold.points_awarded == 0

    held = await held_earnings(s, "roamer")
    assert sorted(h.event_id for h in held) == sorted(r.event_id for r in results if r.status == HELD)
    assert {h.reason for h in held} == {"ACCOUNT_SHARING"}
    approve = pb.ResolveHeldEarningRequest(request_id="ok", held_earning_id=hold.held_earning_id, approve=True)
    assert (await s.stub.ResolveHeldEarning(approve, metadata=ADMIN)).held_earning.state == (
        pb.HELD_EARNING_STATE_APPROVED
    )
    assert await s.balance("roamer") == 2 * (LIMIT + 1) + 2

    s.clock.advance(timedelta(days=1).total_seconds())  # a new day: the devices are counted afresh
    assert (await s.record(s.event("roamer", LIKE, target_id="tomorrow", device_id="phone9"))).status == AWARDED


async def test_the_limit_is_a_versioned_rule(start_suite: StartSuite) -> None:
    s = await start_suite()
    rules = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules
    assert rules.abuse.max_devices_per_account_per_day == LIMIT
    rules.abuse.max_devices_per_account_per_day = 1
    await s.stub.UpdateRules(pb.UpdateRulesRequest(request_id="one-device", rules=rules), metadata=ADMIN)
    first, second = [await s.record(s.event("pair", LIKE, target_id=f"v{i}", device_id=f"d{i}")) for i in range(2)]
    assert (first.status, second.status) == (AWARDED, HELD)

    rules.abuse.max_devices_per_account_per_day = 0  # no limit
    await s.stub.UpdateRules(pb.UpdateRulesRequest(request_id="unlimited", rules=rules), metadata=ADMIN)
    statuses = [(await s.record(s.event("free", LIKE, target_id=f"v{i}", device_id=f"d{i}"))).status for i in range(8)]
    assert statuses == [AWARDED] * 8


async def test_concurrent_batches_of_one_account_from_new_devices_earn_on_at_most_the_limit(
    start_suite: StartSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of one user, each from a new device, overlap after their reads: without the user's row
    locked before the reads (the batch lock), each would count no devices and all would be awarded
    (checked by dropping the user lock: 12 AWARDED)."""
    s = await start_suite()
    assert (await s.record(s.event("sharer", LIKE, target_id="first", device_id="home"))).status == AWARDED
    recorder = s.earning.wiring.recorder
    recorder.coalescer = GroupCommitter(recorder.record, max_batch=1, concurrency=4)
    events = [s.event("sharer", LIKE, target_id=f"v{i}", device_id=f"borrowed{i}") for i in range(12)]
    async with overlapping_batches(s, monkeypatch):
        results = await asyncio.gather(*(s.record(e) for e in events))

    assert sorted(r.status for r in results) == [AWARDED] * (LIMIT - 1) + [HELD] * (12 - LIMIT + 1)
    assert await s.balance("sharer") == 2 * LIMIT
    assert len(await held_earnings(s, "sharer")) == 12 - LIMIT + 1
