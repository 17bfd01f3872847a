"""Every ghz config's call succeeds against real servers: the call resolved by reflection (ghz
names no proto files), its metadata and data rendered as ghz renders them, its placeholders filled
as deploy/ghz/README.md's `render` does, and the answer OK.

A config that can only fail (a missing header, a wrong caller, a misspelt field) is a load test
that measures error handling; the audit found one (Redeem without `x-points-user`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from catalog.config import CatalogSettings
from catalog.main import start as start_catalog
from earning.config import EarningSettings
from earning.main import start as start_earning
from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.common.v1 import common_pb2
from points_cli.suite import DEFAULT_PORTS
from points_platform.client import bearer
from points_platform.config import CALLERS
from redemption.config import RedemptionSettings
from redemption.main import start as start_redemption
from tests.conftest import NewDatabase
from tests.deploy.ghz_template import CallTemplateData, render_json
from wallet.config import WalletSettings
from wallet.main import start as start_wallet

GHZ = Path(__file__).resolve().parents[2] / "deploy" / "ghz"
# Credit funds ghz-user-<n> before Redeem spends as the same user (deploy/ghz/README.md).
FIRST = ("wallet-credit.json",)
REQUESTS_PER_CONFIG = 2  # distinct request numbers: idempotency keys must differ per request


@dataclass
class Running:
    ports: dict[str, int]  # service -> the port the test's server listens on
    tokens: dict[str, str]
    item_id: str


@pytest.fixture(scope="module")
async def running(new_database: NewDatabase) -> AsyncIterator[Running]:
    # 32 random bytes per caller, as a real deployment's tokens (short ones are being refused).
    tokens = {caller: secrets.token_urlsafe(32) for caller in CALLERS}
    common: dict[str, Any] = {"port": 0, "tokens_json": json.dumps(tokens)}
    wallet = await start_wallet(WalletSettings(database_url=await new_database("wallet"), **common))
    catalog = await start_catalog(CatalogSettings(database_url=await new_database("catalog"), **common))
    earning = await start_earning(
        EarningSettings(database_url=await new_database("earning"), wallet_target=f"127.0.0.1:{wallet.port}", **common)
    )
    redemption = await start_redemption(
        RedemptionSettings(
            database_url=await new_database("redemption"),
            wallet_target=f"127.0.0.1:{wallet.port}",
            catalog_target=f"127.0.0.1:{catalog.port}",
            **common,
        )
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as channel:
            # Priced within what one wallet-credit.json call gives a user (1000 POINTS).
            created = await catalog_pb2_grpc.CatalogServiceStub(channel).CreateItem(
                catalog_pb2.CreateItemRequest(
                    request_id="ghz-item",
                    spec=catalog_pb2.ItemSpec(
                        kind=catalog_pb2.ITEM_KIND_COSMETIC,
                        title="ghz load item",
                        price=common_pb2.Price(currency=common_pb2.CURRENCY_POINTS, amount=100),
                        limited_stock=True,
                        stock_total=1000,
                        cosmetic=catalog_pb2.CosmeticAttributes(cosmetic_id="ghz-frame"),
                    ),
                ),
                metadata=bearer(tokens["admin"]),
            )
        ports = {"wallet": wallet.port, "catalog": catalog.port, "earning": earning.port, "redemption": redemption.port}
        yield Running(ports, tokens, created.item.item_id)
    finally:
        await redemption.stop()
        await earning.stop()
        await catalog.stop()
        await wallet.stop()


def fill_placeholders(text: str, running: Running) -> str:
    """What deploy/ghz/README.md's `render` does with sed: tokens and the item id."""
    for caller in ("app", "earning"):
        text = text.replace(f"REPLACE_WITH_{caller.upper()}_TOKEN", running.tokens[caller])
    text = text.replace("REPLACE_WITH_ITEM_ID", running.item_id)
    assert "REPLACE_WITH_" not in text, text
    return text


def local_target(host: str, running: Running) -> str:
    """The config's host (a `points up` port) mapped to the test's server of that service."""
    [service] = [s for s, port in DEFAULT_PORTS.items() if host == f"127.0.0.1:{port}"]
    return f"127.0.0.1:{running.ports[service]}"


def resolve(target: str, call: str) -> tuple[type[Message], type[Message]]:
    """Request and response classes of `call` from the server's reflection service, as ghz does.
    Blocking (the reflection client is synchronous): run it off the event loop the servers use."""
    service_name, method_name = call.rsplit("/", 1)
    with grpc.insecure_channel(target) as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(service_name).methods_by_name[method_name]
        return GetMessageClass(method.input_type), GetMessageClass(method.output_type)


async def call_once(cfg: dict[str, Any], target: str, request_number: int) -> grpc.StatusCode:
    request_class, response_class = await asyncio.to_thread(resolve, target, cfg["call"])
    template = CallTemplateData(cfg["call"], request_number)
    request = json_format.ParseDict(render_json(cfg.get("data", {}), template), request_class())
    metadata = tuple(render_json(cfg.get("metadata", {}), template).items())
    async with grpc.aio.insecure_channel(target) as channel:
        method = channel.unary_unary(
            f"/{cfg['call']}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        try:
            await method(request, metadata=metadata, timeout=float(cfg["timeout"].rstrip("s")))
        except grpc.aio.AioRpcError as failed:
            return failed.code()
    return grpc.StatusCode.OK


async def test_every_ghz_config_call_succeeds(running: Running) -> None:
    configs = sorted(GHZ.glob("*.json"), key=lambda p: (p.name not in FIRST, p.name))
    assert {p.name for p in configs} >= {"redemption-redeem.json", *FIRST}
    statuses: dict[str, list[grpc.StatusCode]] = {}
    for path in configs:
        cfg = json.loads(fill_placeholders(path.read_text(), running))
        target = local_target(cfg["host"], running)
        statuses[path.name] = [await call_once(cfg, target, n) for n in range(REQUESTS_PER_CONFIG)]
    failed = {name: codes for name, codes in statuses.items() if set(codes) != {grpc.StatusCode.OK}}
    assert not failed, failed
