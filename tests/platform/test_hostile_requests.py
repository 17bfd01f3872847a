"""Every RPC of the four services, found from their descriptors, against bytes that do not parse and
page tokens no service issued: INVALID_ARGUMENT with its reason, never INTERNAL or UNKNOWN.

Before the shared page-token codec, seven list RPCs answered INTERNAL to a cursor whose time
overflows in UTC or whose id holds a NUL; before the tolerant deserializer, every RPC answered
UNKNOWN "Unexpected DecodeError" to malformed bytes, even to a caller without credentials.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.api import POLICY as CATALOG_POLICY
from catalog.config import CatalogSettings
from catalog.main import start as start_catalog
from earning.api import POLICY as EARNING_POLICY
from earning.config import EarningSettings
from earning.main import start as start_earning
from points.catalog.v1 import catalog_pb2
from points.earning.v1 import earning_pb2
from points.redemption.v1 import redemption_pb2
from points.wallet.v1 import wallet_pb2
from points_platform.auth import Policy
from points_platform.client import acting_for, bearer, error_reason
from points_platform.clock import ManualClock
from redemption.api import POLICY as REDEMPTION_POLICY
from redemption.config import RedemptionSettings
from redemption.main import start as start_redemption
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.malformed import malformed_bodies
from tests.support.page_tokens import FORGED_TOKENS, forged_tokens
from tests.support.rpc import FORBIDDEN, on_loop
from wallet.api import POLICY as WALLET_POLICY
from wallet.config import WalletSettings
from wallet.main import start as start_wallet

USER = "hostile-user"
SERVICES = {
    "wallet": (wallet_pb2.DESCRIPTOR.services_by_name["WalletService"], WALLET_POLICY),
    "catalog": (catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"], CATALOG_POLICY),
    "earning": (earning_pb2.DESCRIPTOR.services_by_name["EarningService"], EARNING_POLICY),
    "redemption": (redemption_pb2.DESCRIPTOR.services_by_name["RedemptionService"], REDEMPTION_POLICY),
}


@dataclass(frozen=True)
class Rpc:
    service: str
    method: MethodDescriptor
    policy: Policy

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def caller(self) -> str:
        """A caller the policy lets in (admin where it may: internal callers are never user-scoped)."""
        allowed = self.policy[self.method.name]
        return "admin" if "admin" in allowed else sorted(allowed)[0]

    def metadata(self, *, authenticated: bool = True) -> tuple[tuple[str, str], ...]:
        if not authenticated:
            return ()
        md = bearer(TOKENS[self.caller])
        return acting_for(md, USER) if self.caller == "app" else md

    def request_class(self) -> Any:
        return message_factory.GetMessageClass(self.method.input_type)

    def __str__(self) -> str:
        return f"{self.service}.{self.method.name}"


RPCS = [Rpc(name, method, policy) for name, (service, policy) in SERVICES.items() for method in service.methods]
LISTS = [rpc for rpc in RPCS if "page_token" in rpc.method.input_type.fields_by_name]


@pytest.fixture(scope="module")
async def ports(new_database: NewDatabase) -> AsyncIterator[dict[str, int]]:
    """The four services in-process, background loops off, on fresh databases."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    common: dict[str, Any] = {"port": 0, "tokens_json": json.dumps(TOKENS)}
    wallet = await start_wallet(
        WalletSettings(database_url=await new_database("wallet"), **common), clock=clock, sweeper=False
    )
    catalog = await start_catalog(
        CatalogSettings(database_url=await new_database("catalog"), **common), clock=clock, run_sweeper=False
    )
    earning = await start_earning(
        EarningSettings(database_url=await new_database("earning"), **common, wallet_target=f"127.0.0.1:{wallet.port}"),
        clock=clock,
        reconcile=False,
    )
    redemption = await start_redemption(
        RedemptionSettings(
            database_url=await new_database("redemption"),
            **common,
            wallet_target=f"127.0.0.1:{wallet.port}",
            catalog_target=f"127.0.0.1:{catalog.port}",
        ),
        clock=clock,
        recovery=False,
    )
    try:
        yield {"wallet": wallet.port, "catalog": catalog.port, "earning": earning.port, "redemption": redemption.port}
    finally:
        for stop in (redemption.stop, earning.stop, catalog.stop, wallet.stop):
            await stop()


async def call_raw(port: int, rpc: Rpc, body: bytes, metadata: tuple[tuple[str, str], ...]) -> None:
    """Send `body` as the request's bytes, unparsed, the way a broken client would."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        method, timeout = rpc.method, 20
        if method.client_streaming and method.server_streaming:
            both: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(rpc.path)
            async for _ in both(iter([body]), metadata=metadata, timeout=timeout):
                pass
        elif method.client_streaming:
            upload: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(rpc.path)
            await upload(iter([body]), metadata=metadata, timeout=timeout)
        elif method.server_streaming:
            download: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(rpc.path)
            async for _ in download(body, metadata=metadata, timeout=timeout):
                pass
        else:
            unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(rpc.path)
            await unary(body, metadata=metadata, timeout=timeout)


async def refusal(port: int, rpc: Rpc, body: bytes, *, authenticated: bool = True) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason the call failed with (OK, "" if it did not)."""
    try:
        await call_raw(port, rpc, body, rpc.metadata(authenticated=authenticated))
    except grpc.aio.AioRpcError as exc:
        return exc.code(), error_reason(exc)
    return grpc.StatusCode.OK, ""


def test_every_rpc_and_every_list_is_discovered() -> None:
    assert len(RPCS) > 40
    assert {str(rpc) for rpc in LISTS} == {
        "wallet.ListTransactions",
        "wallet.ListGifts",
        "catalog.ListItems",
        "catalog.ListCampaigns",
        "earning.ListChallenges",
        "earning.ListHeldEarnings",
        "earning.ListFailedCredits",
        "redemption.ListRedemptions",
        "redemption.ListAllRedemptions",
        "redemption.ListEntitlements",
        "redemption.ListRaffleTickets",
    }


@pytest.mark.parametrize("rpc", RPCS, ids=str)
async def test_malformed_bytes_are_malformed_request_after_authentication(ports: dict[str, int], rpc: Rpc) -> None:
    port = ports[rpc.service]
    for name, body in malformed_bodies(rpc.request_class()).items():
        assert await refusal(port, rpc, body) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"), name
    code, _ = await refusal(port, rpc, malformed_bodies(rpc.request_class())["bad varint"], authenticated=False)
    assert code == grpc.StatusCode.UNAUTHENTICATED


def list_request(rpc: Rpc, token: str) -> bytes:
    """A request that passes the list's other checks, so the token is what is judged."""
    fields = rpc.method.input_type.fields_by_name
    others: dict[str, Any] = {"user_id": USER} if "user_id" in fields else {}
    if "role" in fields:  # ListGifts: a role is required before the token is read
        others["role"] = 1
    if "raffle_id" in fields:  # ListRaffleTickets: the token is judged before the raffle is looked up
        others["raffle_id"] = "raffle-never-prepared"
    request = rpc.request_class()(page_token=token, **others)
    return bytes(request.SerializeToString())


@pytest.mark.parametrize("rpc", LISTS, ids=str)
async def test_forged_page_tokens_are_invalid_page_token(ports: dict[str, int], rpc: Rpc) -> None:
    port = ports[rpc.service]
    # A valid (empty) token passes; a list of one named raffle then finds none prepared.
    names_a_raffle = "raffle_id" in rpc.method.input_type.fields_by_name
    unforged = (grpc.StatusCode.NOT_FOUND, "RAFFLE_NOT_PREPARED") if names_a_raffle else (grpc.StatusCode.OK, "")
    assert await refusal(port, rpc, list_request(rpc, "")) == unforged
    for token in FORGED_TOKENS:
        assert await refusal(port, rpc, list_request(rpc, token)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
        ), token
    loop = asyncio.get_running_loop()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(token=forged_tokens())
    def forged(token: str) -> None:
        answer = on_loop(loop, refusal(port, rpc, list_request(rpc, token)))
        assert answer == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), token

    await asyncio.to_thread(forged)


@pytest.mark.parametrize("rpc", RPCS, ids=str)
async def test_random_bytes_never_crash(ports: dict[str, int], rpc: Rpc) -> None:
    """Random bytes mostly do not parse; those that do reach the servicer as a random request."""
    loop = asyncio.get_running_loop()
    port = ports[rpc.service]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=st.binary(max_size=64))
    def random_bytes(body: bytes) -> None:
        code, _ = on_loop(loop, refusal(port, rpc, body))
        assert code not in FORBIDDEN, body

    await asyncio.to_thread(random_bytes)
