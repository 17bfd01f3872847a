"""The shared-device rule under review: only accounts that earned count, and concurrent batches see each other."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from points.earning.v1 import earning_pb2 as pb
from tests.earning.conftest import ADMIN, APP, StartSuite, ts

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
    assert [(r.status, r.rejection_reason) for r in [*singles, *batch]] == [(REJECTED, "NOT_A_PARTICIPANT")] * (LIMIT + 2)

    assert await device_accounts(s, "kiosk") == []
    owner = await s.record(s.event("owner", LIKE, target_id="v", device_id="kiosk"))
    assert owner.status == AWARDED and await s.balance("owner") == 2
    assert await device_accounts(s, "kiosk") == ["owner"]
