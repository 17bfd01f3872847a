"""Real wallet, catalog and redemption servers in-process on loopback, each on its own database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count

import grpc
import pytest

from catalog.config import CatalogSettings
from catalog.main import StartedCatalog
from catalog.main import start as start_catalog
from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as rpb
from points.redemption.v1 import redemption_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.client import acting_for, bearer
from points_platform.clock import ManualClock
from redemption.config import RedemptionSettings
from redemption.main import StartedRedemption
from redemption.main import start as start_redemption
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.wait import HANG_SECONDS
from wallet.config import WalletSettings
from wallet.main import start as start_wallet

POINTS = common_pb2.CURRENCY_POINTS
COINS = common_pb2.CURRENCY_COINS
DIAMONDS = common_pb2.CURRENCY_DIAMONDS
_ids = count()


def md(caller: str) -> tuple[tuple[str, str], ...]:
    return bearer(TOKENS[caller])


def uid(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{datetime.now(UTC).timestamp():.0f}"


@dataclass
class Suite:
    clock: ManualClock
    redemption: StartedRedemption
    catalog: StartedCatalog
    channels: dict[str, grpc.aio.Channel]
    wallet_stub: wallet_pb2_grpc.WalletServiceAsyncStub = field(init=False)
    catalog_stub: catalog_pb2_grpc.CatalogServiceAsyncStub = field(init=False)
    stub: redemption_pb2_grpc.RedemptionServiceAsyncStub = field(init=False)

    def __post_init__(self) -> None:
        self.wallet_stub = wallet_pb2_grpc.WalletServiceStub(self.channels["wallet"])
        self.catalog_stub = catalog_pb2_grpc.CatalogServiceStub(self.channels["catalog"])
        self.stub = redemption_pb2_grpc.RedemptionServiceStub(self.channels["redemption"])

    async def fund(self, user_id: str, amount: int, currency: common_pb2.Currency.ValueType = POINTS) -> None:
        if currency == COINS:
            await self.wallet_stub.Credit(wallet_pb2.CreditRequest(
                request_id=uid("fund"), user_id=user_id, currency=currency, amount=amount, reason="coin_purchase",
                reference=uid("pay")), metadata=md("payments"))
        else:
            await self.wallet_stub.Credit(wallet_pb2.CreditRequest(
                request_id=uid("fund"), user_id=user_id, currency=currency, amount=amount, reason="watch_time",
                reference=uid("ev")), metadata=md("earning"))

    async def balance(self, user_id: str, currency: common_pb2.Currency.ValueType = POINTS) -> wallet_pb2.Balance:
        reply = await self.wallet_stub.GetBalance(wallet_pb2.GetBalanceRequest(user_id=user_id, currency=currency),
                                                  metadata=acting_for(md("app"), user_id))
        return reply.balances[0]

    async def item(self, **spec_fields: object) -> catalog_pb2.Item:
        spec = catalog_pb2.ItemSpec(**spec_fields)  # type: ignore[arg-type]
        if not spec.title:
            spec.title = "item"
        reply = await self.catalog_stub.CreateItem(catalog_pb2.CreateItemRequest(request_id=uid("item"), spec=spec),
                                                   metadata=md("admin"))
        return reply.item

    async def expire_reservations(self) -> int:
        """One pass of the catalog's reservation sweeper at the shared clock (its background loop also runs)."""
        return await self.catalog.reservations.expire_due()

    async def get_item(self, item_id: str) -> catalog_pb2.Item:
        return (await self.catalog_stub.GetItem(catalog_pb2.GetItemRequest(item_id=item_id), metadata=md("admin"))).item

    async def redeem(self, user_id: str, item_id: str, quantity: int = 1, region: str = "US",
                     recipient_id: str = "", request_id: str | None = None, timeout: float = 20) -> rpb.Redemption:
        reply = await self.stub.Redeem(rpb.RedeemRequest(
            request_id=request_id or uid("redeem"), user_id=user_id, item_id=item_id, quantity=quantity,
            region=region, recipient_id=recipient_id), metadata=acting_for(md("app"), user_id), timeout=timeout)
        return reply.redemption

    async def entitlements(self, user_id: str) -> list[rpb.Entitlement]:
        out: list[rpb.Entitlement] = []
        token = ""
        while True:
            reply = await self.stub.ListEntitlements(rpb.ListEntitlementsRequest(
                user_id=user_id, page_token=token, page_size=100), metadata=acting_for(md("app"), user_id))
            out.extend(reply.entitlements)
            token = reply.next_page_token
            if not token:
                return out


def cosmetic_spec(price: int = 100, currency: common_pb2.Currency.ValueType = POINTS,
                  **extra: object) -> dict[str, object]:
    return {"kind": catalog_pb2.ITEM_KIND_COSMETIC, "price": common_pb2.Price(currency=currency, amount=price),
            "cosmetic": catalog_pb2.CosmeticAttributes(cosmetic_id="gold-frame"), **extra}


@pytest.fixture(scope="module")
async def suite(new_database: NewDatabase) -> AsyncIterator[Suite]:
    async with started_suite(new_database) as started:
        yield started


@asynccontextmanager
async def started_suite(new_database: NewDatabase, nats_url: str = "") -> AsyncIterator[Suite]:
    """The three servers; with `nats_url`, redemption's relay publishes its events there."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1))
    tokens = json.dumps(TOKENS)
    wallet = await start_wallet(WalletSettings(database_url=await new_database("wallet"), port=0,
                                               tokens_json=tokens), clock=clock)
    catalog = await start_catalog(CatalogSettings(database_url=await new_database("catalog"), port=0,
                                                  tokens_json=tokens), clock=clock)
    redemption = await start_redemption(RedemptionSettings(
        database_url=await new_database("redemption"), port=0, tokens_json=tokens,
        wallet_target=f"127.0.0.1:{wallet.port}", catalog_target=f"127.0.0.1:{catalog.port}",
        recovery_interval_seconds=0.2, lease_seconds=2, retry_base_seconds=0.05, nats_url=nats_url), clock=clock,
        recovery=False)
    channels = {
        "wallet": grpc.aio.insecure_channel(f"127.0.0.1:{wallet.port}"),
        "catalog": grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}"),
        "redemption": grpc.aio.insecure_channel(f"127.0.0.1:{redemption.port}"),
    }
    try:
        yield Suite(clock, redemption, catalog, channels)
    finally:
        for channel in channels.values():
            await channel.close()
        await redemption.stop()
        await catalog.stop()
        await wallet.stop()


async def settle(suite: Suite, redemptions: list[rpb.Redemption], *, rounds: int = 200) -> list[rpb.Redemption]:
    """Step PENDING redemptions to a terminal state: each round waits until the server's saga drivers
    have stopped, reads the redemptions as a client would, and for those still PENDING moves the shared
    clock 0.5 s and runs one recovery pass (the recovery loop is off in-process to keep time manual)."""
    current = {r.redemption_id: r for r in redemptions}
    service = suite.redemption.service
    pending = [rid for rid, r in current.items() if r.state == rpb.REDEMPTION_STATE_PENDING]
    for _ in range(rounds):
        if not pending:
            break
        await asyncio.wait_for(service.drivers_stopped(), HANG_SECONDS)
        for rid in pending:
            reply = await suite.stub.GetRedemption(rpb.GetRedemptionRequest(redemption_id=rid), metadata=md("admin"))
            current[rid] = reply.redemption
        pending = [rid for rid in pending if current[rid].state == rpb.REDEMPTION_STATE_PENDING]
        if pending:
            suite.clock.advance(0.5)
            await service.recover_once()
    return [current[r.redemption_id] for r in redemptions]
