"""`points up` end to end: health, reflection, authentication, clean stop, restart keeps state."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.client import bearer
from tests.e2e.suite_process import SERVICES, SuiteProcess, alive, describe
from tests.support.wait import HANG_SECONDS

pytestmark = pytest.mark.slow

EXPECTED_RPCS = {
    "wallet": ("points.wallet.v1.WalletService", {
        "GetBalance", "Credit", "Debit", "Reserve", "CommitHold", "ReleaseHold", "GetHold",
        "ListTransactions", "SendGift", "RequestPayout", "CompletePayout"}),
    "catalog": ("points.catalog.v1.CatalogService", {
        "CreateItem", "UpdateItem", "GetItem", "ListItems", "Quote", "ReserveStock",
        "CommitReservation", "ReleaseReservation", "CreateCampaign", "ListCampaigns"}),
    "earning": ("points.earning.v1.EarningService", {
        "RecordActivity", "RecordActivities", "StreamActivities", "GetRules", "UpdateRules",
        "CreateChallenge", "JoinChallenge", "ListChallenges", "GetDailySummary",
        "ListHeldEarnings", "ResolveHeldEarning"}),
    "redemption": ("points.redemption.v1.RedemptionService", {
        "Redeem", "GetRedemption", "ListRedemptions", "RefundRedemption", "ListEntitlements", "DrawRaffle"}),
}


@pytest.fixture
def suite(traversable_tmp_path: Path) -> Iterator[SuiteProcess]:
    running = SuiteProcess(traversable_tmp_path / "state", extra_args=["--wallet-workers", "2"])
    running.start()
    yield running
    running.kill_all()


def test_up_serves_checks_auth_and_stops_cleanly(suite: SuiteProcess) -> None:
    for service in SERVICES:
        with grpc.insecure_channel(f"127.0.0.1:{suite.ports[service]}") as channel:
            # types-grpcio-health-checking declares no methods on HealthStub.
            health: Any = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
            full_name, rpcs = EXPECTED_RPCS[service]
            database = ProtoReflectionDescriptorDatabase(channel)
            assert full_name in database.get_services()
            methods = {m.name for m in DescriptorPool(database).FindServiceByName(full_name).methods}
            assert rpcs <= methods, rpcs - methods

    tokens = suite.tokens
    banner = "".join(suite.output)
    assert str((suite.state_dir / "credentials.json").resolve()) in banner
    assert not [caller for caller, token in tokens.items() if token in banner], "a token in the banner"
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['wallet']}") as channel:
        wallet = wallet_pb2_grpc.WalletServiceStub(channel)
        with pytest.raises(grpc.RpcError) as no_token:
            wallet.GetBalance(wallet_pb2.GetBalanceRequest(user_id="alice"), timeout=5)
        assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['catalog']}") as channel:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        with pytest.raises(grpc.RpcError) as denied:
            catalog.CreateItem(
                catalog_pb2.CreateItemRequest(request_id="r1"), metadata=bearer(tokens["app"]), timeout=5
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        try:
            catalog.CreateItem(
                catalog_pb2.CreateItemRequest(request_id="r1"), metadata=bearer(tokens["admin"]), timeout=5
            )
        except grpc.RpcError as passed:
            assert passed.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
            assert passed.code() != grpc.StatusCode.INTERNAL

    pids = suite.pids()
    # points up, every service's workers (two wallets here, sharing its port), the console, NATS,
    # PostgreSQL.
    expected = {service: 2 if service == "wallet" else 1 for service in SERVICES}
    assert len(pids) == 1 + sum(expected.values()) + 1 + 1 + 1, pids
    workers = json.loads((suite.state_dir / "pids.json").read_text())
    assert {s: len(p) for s, p in workers.items()} == expected
    assert all(alive(pid) for p in workers.values() for pid in p)
    started = time.monotonic()
    assert suite.stop(signal.SIGTERM) == 0
    while any(alive(pid) for pid in pids) and time.monotonic() - started < HANG_SECONDS:
        time.sleep(0.1)  # pacing while waiting for the processes to exit
    left = [describe(pid) for pid in pids if alive(pid)]
    assert not left, f"processes left after SIGTERM: {left}"

    # The same state dir serves the same credentials (and the same data directory).
    again = SuiteProcess(suite.state_dir, ports=suite.ports)
    again.start()
    try:
        assert again.tokens == tokens
        assert again.stop(signal.SIGINT) == 0
    finally:
        again.kill_all()


def test_up_refuses_a_taken_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "points_cli.main", "up",
             "--state-dir", str(tmp_path / "s"), "--wallet-port", str(taken)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"points up: port {taken} (wallet gRPC) on 127.0.0.1 is already in use"]
