"""A database outage answers UNAVAILABLE with reason DATABASE_UNAVAILABLE (retryable), never
INTERNAL, and applies nothing by halves: once the database is back the same request succeeds, once.

The outage is real: the service's database is closed to connections and its sessions are
terminated, as a restart or failover of PostgreSQL would do, while the server keeps running.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy.engine import make_url

from points.common.v1 import common_pb2
from points.earning.v1 import earning_pb2 as pb
from points.wallet.v1 import wallet_pb2
from points_platform.client import acting_for, bearer, error_reason
from tests.earning.conftest import APP, StartSuite
from tests.support.credentials import TOKENS
from tests.support.wait import eventually

LIKE = 2
AWARDED, DUPLICATE = 1, 3


async def set_database_open(url: str, is_open: bool) -> None:
    """Open or close a database to connections; closing also ends its sessions."""
    parsed = make_url(url)
    server = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'ALTER DATABASE "{parsed.database}" ALLOW_CONNECTIONS {str(is_open).lower()}')
        if not is_open:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                parsed.database,
            )
    finally:
        await conn.close()


async def unavailable(call: Awaitable[Any]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    assert error_reason(failure.value) == "DATABASE_UNAVAILABLE"


async def test_earning_without_its_database_answers_unavailable_and_records_once_when_back(
    start_suite: StartSuite,
) -> None:
    s = await start_suite()
    assert (await s.record(s.event("warm", LIKE, target_id="v"))).status == AWARDED  # pooled connections exist
    url = s.earning_settings.database_url if s.earning_settings else ""
    single = s.event("outage1", LIKE, target_id="v")
    batch = [s.event("outage2", LIKE, target_id="v"), s.event("outage3", LIKE, target_id="v")]
    await set_database_open(url, False)
    try:
        for _ in range(2):  # a dead pooled connection first, then a refused new one
            await unavailable(s.stub.RecordActivity(pb.RecordActivityRequest(event=single), metadata=APP, timeout=10))
            await unavailable(
                s.stub.RecordActivities(pb.RecordActivitiesRequest(events=batch), metadata=APP, timeout=10)
            )
            await unavailable(
                s.stub.GetDailySummary(
                    pb.GetDailySummaryRequest(user_id="outage1"), metadata=acting_for(APP, "outage1"), timeout=10
                )
            )
    finally:
        await set_database_open(url, True)

    async def recorded() -> bool:
        try:
            return (await s.record(single)).status in (AWARDED, DUPLICATE)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE  # until the pool has reconnected
            return False

    await eventually(recorded)
    again = await s.stub.RecordActivities(pb.RecordActivitiesRequest(events=batch), metadata=APP, timeout=10)
    assert [r.status for r in again.results] == [AWARDED, AWARDED]  # nothing of the failed batch was kept
    assert (await s.record(single)).status == DUPLICATE
    assert [await s.balance(u) for u in ("outage1", "outage2", "outage3")] == [2, 2, 2]
    assert [len(await s.history(u)) for u in ("outage1", "outage2", "outage3")] == [1, 1, 1]


async def test_the_wallet_without_its_database_answers_unavailable_and_earning_credits_once_it_is_back(
    start_suite: StartSuite,
) -> None:
    s = await start_suite()
    assert (await s.record(s.event("warm", LIKE, target_id="v"))).status == AWARDED
    earning_token = bearer(TOKENS["earning"])
    credit = wallet_pb2.CreditRequest(
        request_id="outage-credit", user_id="direct", currency=common_pb2.CURRENCY_POINTS, amount=5, reason="test",
    )
    await set_database_open(s.wallet_settings.database_url, False)
    try:
        for _ in range(2):
            await unavailable(s.wallet_stub.Credit(credit, metadata=earning_token, timeout=10))
            await unavailable(
                s.wallet_stub.GetBalance(
                    wallet_pb2.GetBalanceRequest(user_id="direct", currency=common_pb2.CURRENCY_POINTS),
                    metadata=acting_for(APP, "direct"), timeout=10,
                )
            )
        # earning decides (its own database is up); the credit waits in the outbox
        decided = await s.record(s.event("patient", LIKE, target_id="v"))
        assert decided.status == AWARDED and not decided.wallet_transaction_id
    finally:
        await set_database_open(s.wallet_settings.database_url, True)

    async def credited() -> bool:
        try:
            return await s.balance("patient") == 2
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            return False

    await s.reconciled(credited)
    reply = await s.wallet_stub.Credit(credit, metadata=earning_token, timeout=10)
    assert reply.balance.available == 5
    await s.reconcile(passes=3)  # later reconciliation passes pay nothing more
    assert await s.balance("patient") == 2 and len(await s.history("patient")) == 1
