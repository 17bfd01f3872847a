"""A real wallet and a real earning server in-process, on fresh databases, with a ManualClock.

The reconciliation loop is off: a test runs a pass with `Suite.reconcile()`, which first moves the
clock past the outbox's minimum age, so "later" is a step of the test, not a wait."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from earning.config import EarningSettings
from earning.main import StartedEarning
from earning.main import start as start_earning
from points.common.v1 import common_pb2
from points.earning.v1 import earning_pb2 as pb
from points.earning.v1 import earning_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.client import acting_for, bearer
from points_platform.clock import ManualClock
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.rpc import ts
from tests.support.wait import eventually
from wallet.config import WalletSettings
from wallet.main import StartedWallet
from wallet.main import start as start_wallet

APP = bearer(TOKENS["app"])
ADMIN = bearer(TOKENS["admin"])
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class Suite:
    clock: ManualClock
    wallet: StartedWallet
    earning: StartedEarning
    wallet_settings: WalletSettings
    earning_settings: EarningSettings | None = None
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    counter: int = 0

    def __post_init__(self) -> None:
        self.earning_channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.earning.port}")
        self.stub = earning_pb2_grpc.EarningServiceStub(self.earning_channel)
        self._wallet_channel: grpc.aio.Channel | None = None

    @property
    def wallet_stub(self) -> wallet_pb2_grpc.WalletServiceAsyncStub:
        if self._wallet_channel is None:
            self._wallet_channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.wallet.port}")
        return wallet_pb2_grpc.WalletServiceStub(self._wallet_channel)

    def event(self, user: str, kind: int, **kw: Any) -> pb.ActivityEvent:
        self.counter += 1
        fields: dict[str, Any] = {
            "event_id": f"ev-{user}-{self.counter}", "user_id": user, "type": kind,
            "occurred_at": ts(self.clock.now()), "region": "US", "device_id": f"dev-{user}",
        }
        fields.update(kw)
        return pb.ActivityEvent(**fields)

    async def record(self, event: pb.ActivityEvent) -> pb.EventResult:
        reply = await self.stub.RecordActivity(pb.RecordActivityRequest(event=event), metadata=APP, timeout=10)
        return reply.result

    async def balance(self, user: str) -> int:
        reply = await self.wallet_stub.GetBalance(
            wallet_pb2.GetBalanceRequest(user_id=user, currency=common_pb2.CURRENCY_POINTS),
            metadata=acting_for(APP, user), timeout=10,
        )
        return sum(b.available + b.held for b in reply.balances)

    async def history(self, user: str) -> list[wallet_pb2.LedgerEntry]:
        reply = await self.wallet_stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(user_id=user, currency=common_pb2.CURRENCY_POINTS, page_size=500),
            metadata=acting_for(APP, user), timeout=10,
        )
        return list(reply.entries)

    async def reconcile(self, passes: int = 1) -> int:
        """Reconciliation passes, each over the pending credits old enough by then (the clock moves
        past the minimum age first); the number credited."""
        assert self.earning_settings is not None
        credited = 0
        for _ in range(passes):
            self.clock.advance(self.earning_settings.reconcile_min_age_seconds)
            credited += await self.earning.wiring.crediting.reconcile_once()
        return credited

    async def reconciled(self, check: Callable[[], Awaitable[bool]]) -> None:
        """Run reconciliation passes until `check` holds (a peer coming back may take a few)."""

        async def after_a_pass() -> bool:
            if await check():
                return True
            await self.reconcile()
            return await check()

        await eventually(after_a_pass, what="reconciliation")

    async def restart_earning(self, **overrides: Any) -> None:
        """Stop earning and start it again on the same database with changed settings (an operator's fix)."""
        assert self.earning_settings is not None
        await self.close_channels()
        await self.earning.stop()
        self.earning_settings = self.earning_settings.model_copy(update=overrides)
        self.earning = await start_earning(self.earning_settings, clock=self.clock, reconcile=False)
        self.__post_init__()

    async def close_channels(self) -> None:
        await self.earning_channel.close()
        if self._wallet_channel is not None:
            await self._wallet_channel.close()
            self._wallet_channel = None


StartSuite = Callable[..., Awaitable[Suite]]


@pytest.fixture
async def start_suite(new_database: NewDatabase) -> AsyncIterator[StartSuite]:
    """Factory: a wallet + earning pair; every pair started is stopped at the end of the test."""
    started: list[Suite] = []

    async def make(**earning_overrides: Any) -> Suite:
        clock = ManualClock(START)
        wallet_settings = WalletSettings(
            database_url=await new_database("wallet"), port=0, tokens_json=json.dumps(TOKENS)
        )
        wallet = await start_wallet(wallet_settings, clock=clock, sweeper=False)
        fields: dict[str, Any] = {
            "database_url": await new_database("earning"), "port": 0, "tokens_json": json.dumps(TOKENS),
            "wallet_target": f"127.0.0.1:{wallet.port}", "reconcile_min_age_seconds": 0.5,
            "wallet_timeout_seconds": 30.0,  # a bound on a hang, not a fault injected by time
        }
        settings = EarningSettings(**{**fields, **earning_overrides})
        earning = await start_earning(settings, clock=clock, reconcile=False)
        suite = Suite(clock, wallet, earning, wallet_settings, settings)
        started.append(suite)
        return suite

    yield make
    for suite in started:
        await suite.close_channels()
        await suite.earning.stop()
        await suite.wallet.stop()


@pytest.fixture(scope="module")
async def shared_suite(new_database: NewDatabase) -> AsyncIterator[Suite]:
    """One pair for a module whose tests use distinct users and do not move the clock backwards."""
    clock = ManualClock(START)
    wallet_settings = WalletSettings(database_url=await new_database("wallet"), port=0, tokens_json=json.dumps(TOKENS))
    wallet = await start_wallet(wallet_settings, clock=clock, sweeper=False)
    settings = EarningSettings(
        database_url=await new_database("earning"), port=0, tokens_json=json.dumps(TOKENS),
        wallet_target=f"127.0.0.1:{wallet.port}", reconcile_min_age_seconds=0.5,
    )
    earning = await start_earning(settings, clock=clock, reconcile=False)
    suite = Suite(clock, wallet, earning, wallet_settings, settings)
    yield suite
    await suite.close_channels()
    await earning.stop()
    await wallet.stop()
