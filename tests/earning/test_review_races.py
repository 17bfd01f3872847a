"""Races found in review: concurrent key reuse across users, a rule update racing a batch's lock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from earning.store.batch import BatchRepository
from points.earning.v1 import earning_pb2 as pb
from tests.earning.conftest import ADMIN, APP, StartSuite

LIKE = pb.ACTIVITY_TYPE_LIKE


async def test_same_event_id_for_two_users_in_concurrent_batches_is_key_reuse_not_internal(
    start_suite: StartSuite,
) -> None:
    s = await start_suite()

    def batch(round_: int, user: str) -> pb.RecordActivitiesRequest:
        return pb.RecordActivitiesRequest(
            events=[
                s.event(user, LIKE, target_id=f"v{k}", event_id=f"shared-{round_}-{k}", device_id="")
                for k in range(20)
            ]
        )

    calls = []
    for round_ in range(6):
        calls.append(s.stub.RecordActivities(batch(round_, f"ua{round_}"), metadata=APP, timeout=20))
        calls.append(s.stub.RecordActivities(batch(round_, f"ub{round_}"), metadata=APP, timeout=20))
    replies = await asyncio.gather(*calls, return_exceptions=True)

    assert [r for r in replies if isinstance(r, BaseException)] == []
    for round_ in range(6):
        a, b = replies[2 * round_].results, replies[2 * round_ + 1].results  # type: ignore[union-attr]
        for ra, rb in zip(a, b, strict=True):  # each id is paid to exactly one of the two users
            assert sorted([ra.status, rb.status]) == [pb.EVENT_STATUS_AWARDED, pb.EVENT_STATUS_REJECTED]
            assert "IDEMPOTENCY_KEY_REUSED" in (ra.rejection_reason, rb.rejection_reason)
        assert await s.balance(f"ua{round_}") + await s.balance(f"ub{round_}") == 20 * 2


async def test_rule_update_committed_before_the_batch_lock_applies_to_the_batch(
    start_suite: StartSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await start_suite()
    await s.record(s.event("warm", LIKE, target_id="w"))  # the rule versions are cached now (version 1)
    rules = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules
    for rule in rules.activity_rules:
        if rule.type == LIKE:
            rule.points_per_action = 7
    original = BatchRepository.lock_batch
    updated: list[int] = []

    async def update_then_lock(repository: BatchRepository, *ids: Any) -> Any:
        if not updated:  # an admin's UpdateRules commits between the batch's cache read and its lock
            reply = await s.stub.UpdateRules(
                pb.UpdateRulesRequest(request_id="race-rules", rules=rules, expected_version=rules.version),
                metadata=ADMIN, timeout=10,
            )
            updated.append(reply.rules.version)
        return await original(repository, *ids)

    monkeypatch.setattr(BatchRepository, "lock_batch", update_then_lock)
    result = await s.record(s.event("racer", LIKE, target_id="x"))  # occurs at the update's effective time

    assert updated == [rules.version + 1]
    assert result.points_awarded == 7
    assert await s.balance("racer") == 7
