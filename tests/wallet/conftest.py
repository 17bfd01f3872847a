"""A real wallet (in-process gRPC server + its own PostgreSQL database) per test module."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from points.common.v1.common_pb2 import CURRENCY_COINS, CURRENCY_DIAMONDS, CURRENCY_POINTS
from points.wallet.v1 import wallet_pb2 as pb
from points.wallet.v1 import wallet_pb2_grpc
from points_platform.client import acting_for, bearer, error_reason, fits_header
from points_platform.clock import ManualClock
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from wallet.api import USER_SCOPED
from wallet.config import WalletSettings
from wallet.main import StartedWallet, start

POINTS, COINS, DIAMONDS = CURRENCY_POINTS, CURRENCY_COINS, CURRENCY_DIAMONDS


class Client:
    """Stubs of one wallet, calling as any caller."""

    def __init__(self, channel: grpc.aio.Channel, started: StartedWallet, clock: ManualClock) -> None:
        self.stub = wallet_pb2_grpc.WalletServiceStub(channel)
        self.started = started
        self.engine: AsyncEngine = started.engine
        self.clock = clock

    def call(self, method: str, caller: str = "admin", user: str | None = None) -> Callable[..., Any]:
        """`user`: the end user an `app` call acts for ("" = none); by default the user its request
        names (the field `wallet.api.USER_SCOPED` checks), as an honest app backend sends it."""
        rpc = getattr(self.stub, method)
        field = USER_SCOPED.get(method) if caller == "app" else None

        async def invoke(request: Any, **kw: Any) -> Any:
            named = getattr(request, field) if field else ""
            acting = user if user is not None else (named if fits_header(named) else "")
            metadata = acting_for(bearer(TOKENS[caller]), acting) if acting else bearer(TOKENS[caller])
            return await rpc(request, metadata=metadata, timeout=kw.get("timeout", 30))

        return invoke

    async def fund(self, user: str, amount: int, currency: int = POINTS, request_id: str | None = None) -> None:
        caller = "payments" if currency == COINS else "earning"
        request_id = request_id or f"fund-{uuid.uuid4().hex}"
        await self.call("Credit", caller)(
            pb.CreditRequest(  # each funding is its own payment (one credit per payment reference)
                request_id=request_id, user_id=user, currency=currency, amount=amount, reason="test",  # type: ignore[arg-type]
                reference=f"pay-{request_id}",
            )
        )

    async def balance(self, user: str, currency: int = POINTS) -> tuple[int, int]:
        reply = await self.call("GetBalance")(pb.GetBalanceRequest(user_id=user, currency=currency))  # type: ignore[arg-type]
        return reply.balances[0].available, reply.balances[0].held

    async def expect_error(self, coro: Any, code: grpc.StatusCode, reason: str) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await coro
        assert (caught.value.code(), error_reason(caught.value)) == (code, reason), caught.value.details()


async def check_invariants(engine: AsyncEngine) -> None:
    """Ledger invariants: balanced transactions, zero-sum currencies, balances = fold of postings."""
    async with engine.connect() as conn:
        unbalanced = (
            await conn.execute(
                text("SELECT transaction_id, currency FROM postings GROUP BY 1, 2 HAVING sum(amount) <> 0 LIMIT 5")
            )
        ).all()
        assert unbalanced == [], unbalanced
        totals = (await conn.execute(text("SELECT currency, sum(amount) FROM postings GROUP BY 1"))).all()
        assert all(total == 0 for _, total in totals), totals
        # Filed by user (docs/wallet.md, Keys by user): each user's share of a transaction balances
        # on its own, and has the transaction's row under that user.
        unfiled = (
            await conn.execute(
                text(
                    "SELECT user_id, transaction_id, currency FROM postings GROUP BY 1, 2, 3"
                    " HAVING sum(amount) <> 0 LIMIT 5"
                )
            )
        ).all()
        assert unfiled == [], unfiled
        orphans = (
            await conn.execute(
                text(
                    "SELECT p.user_id, p.transaction_id FROM postings p LEFT JOIN transactions t"
                    " USING (user_id, transaction_id) WHERE t.transaction_id IS NULL LIMIT 5"
                )
            )
        ).all()
        assert orphans == [], orphans
        drift = (
            await conn.execute(
                text(
                    "SELECT a.user_id, a.currency, a.available + a.held AS stored, coalesce(p.total, 0) AS folded "
                    "FROM accounts a FULL JOIN (SELECT user_id, currency, sum(amount) AS total FROM postings "
                    "WHERE account = 'user:' || user_id GROUP BY 1, 2) p"
                    " ON p.user_id = a.user_id AND p.currency = a.currency "
                    "WHERE coalesce(a.available + a.held, 0) <> coalesce(p.total, 0) LIMIT 5"
                )
            )
        ).all()
        assert drift == [], drift
        held = (
            await conn.execute(
                text(
                    "SELECT a.user_id, a.currency FROM accounts a"
                    " LEFT JOIN (SELECT user_id, currency, sum(amount) AS h "
                    "FROM holds WHERE state = 1 GROUP BY 1, 2) h USING (user_id, currency) "
                    "WHERE a.held <> coalesce(h.h, 0) LIMIT 5"
                )
            )
        ).all()
        assert held == [], held
        negative = (await conn.execute(text("SELECT count(*) FROM accounts WHERE available < 0 OR held < 0"))).scalar()
        assert negative == 0


@pytest.fixture(scope="module")
async def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
async def wallet(new_database: NewDatabase, clock: ManualClock) -> AsyncIterator[Client]:
    settings = WalletSettings(
        database_url=await new_database("wallet"), port=0, tokens_json=json.dumps(TOKENS), db_pool_size=20
    )
    started = await start(settings, clock=clock, sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    try:
        yield Client(channel, started, clock)
        await check_invariants(started.engine)
    finally:
        await channel.close()
        await started.stop()
