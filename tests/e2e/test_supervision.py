"""`points up` supervises: a SIGKILLed service comes back while the others keep serving; the
banner and logs never show a token; `--database-url` with a database name still makes
`points_<service>` databases on that server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_cli.suite import metrics_say_serving
from points_platform.client import bearer
from points_platform.db import database_url
from points_platform.embedded_pg import EmbeddedPostgres
from tests.e2e.suite_process import SERVICES, SuiteProcess, alive
from tests.support.credentials import TOKENS
from tests.support.wait import eventually, is_serving

pytestmark = pytest.mark.slow


@pytest.fixture
def server(traversable_tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of the test's own: `points up` is pointed at it with --database-url."""
    pg = EmbeddedPostgres(traversable_tmp_path / "pg" / "data", durable=False)
    pg.start()
    yield pg
    pg.stop()


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _databases(server: EmbeddedPostgres) -> set[str]:
    conn = await asyncpg.connect(_libpq(database_url(server.url, "postgres")), timeout=30)
    try:
        return {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


async def _call_another(victim: str, suite: SuiteProcess) -> None:
    """One authenticated call to a service other than `victim`; raises unless it answers."""
    admin = bearer(suite.tokens["admin"])
    if victim != "wallet":
        async with grpc.aio.insecure_channel(f"127.0.0.1:{suite.ports['wallet']}") as channel:
            wallet = wallet_pb2_grpc.WalletServiceStub(channel)
            await wallet.GetBalance(wallet_pb2.GetBalanceRequest(user_id="alice"), metadata=admin, timeout=10)
    else:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{suite.ports['catalog']}") as channel:
            catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
            await catalog.ListItems(catalog_pb2.ListItemsRequest(page_size=1), metadata=admin, timeout=10)


async def test_each_killed_service_is_restarted_while_the_others_serve(
    server: EmbeddedPostgres, traversable_tmp_path: Path
) -> None:
    # A URL naming a database, like README's for the tests: the databases go beside it, not in it.
    with_database = _libpq(database_url(server.url, "postgres"))
    suite = SuiteProcess(
        traversable_tmp_path / "state", extra_args=["--database-url", with_database, "--wallet-workers", "2"]
    )
    suite.start()
    try:
        created = await _databases(server)
        assert {f"points_{s}" for s in SERVICES} <= created
        assert not [name for name in created if "/" in name], created

        pids_file = suite.state_dir / "pids.json"
        # Every process, the wallet's second worker (sharing its port) included.
        for victim, worker in [("wallet", 0), ("wallet", 1), ("catalog", 0), ("earning", 0), ("redemption", 0)]:
            before: dict[str, list[int]] = json.loads(pids_file.read_text())
            killed = before[victim][worker]
            os.kill(killed, signal.SIGKILL)

            async def killed_is_gone(pid: int = killed) -> bool:
                return not alive(pid)

            await eventually(killed_is_gone, what=f"{victim} worker {worker} ({killed}) gone")
            # While it is down (a restart waits at least the first backoff), the others serve.
            for other in SERVICES:
                if other != victim:
                    assert await is_serving(suite.ports[other]), f"{other} while {victim} restarts"
            await _call_another(victim, suite)

            async def back_and_serving(name: str = victim, index: int = worker, old: int = killed) -> bool:
                now = json.loads(pids_file.read_text())[name][index]
                # Its own metrics: with two workers a health check may reach the other one.
                port = suite.metrics_port(name, index)
                return now != old and alive(now) and await asyncio.to_thread(metrics_say_serving, "127.0.0.1", port)

            await eventually(back_and_serving, what=f"{victim} worker {worker} serving again")
            after: dict[str, list[int]] = json.loads(pids_file.read_text())
            before[victim][worker] = after[victim][worker]
            assert after == before, "only the killed process was restarted"

        assert json.loads((suite.state_dir / "restarts.json").read_text()) == {
            "wallet": 1,
            "wallet#2": 1,
            "catalog": 1,
            "earning": 1,
            "redemption": 1,
        }
        tokens = suite.tokens
        assert suite.stop(signal.SIGTERM) == 0
    finally:
        suite.kill_all()

    output = "".join(suite.output)
    restarted = [json.loads(line) for line in output.splitlines() if '"service_restarted"' in line]
    assert sorted(entry["worker"] for entry in restarted) == sorted([*SERVICES, "wallet#2"])
    exited = [json.loads(line) for line in output.splitlines() if '"service_exited"' in line]
    assert {entry["exit"] for entry in exited} == {"killed by SIGKILL"}
    assert {entry["attempt"] for entry in exited} == {1}
    # Neither what `points up` prints nor any service log shows a caller's token.
    logs = [output] + [path.read_text() for path in (suite.state_dir / "logs").glob("*.log")]
    leaked = [caller for caller, token in tokens.items() if any(token in text for text in logs)]
    assert not leaked, f"tokens of {leaked} in the banner or logs"


def test_a_service_that_cannot_start_stops_points_up_at_once_with_its_exit(
    traversable_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a crash to restart: the wallet's settings refuse a placeholder token (inline tokens
    override the suite's credentials file), and `points up` says so without waiting for a timeout."""
    monkeypatch.setenv("POINTS_WALLET_TOKENS_JSON", json.dumps({**TOKENS, "app": "REPLACE-ME-app-token"}))
    suite = SuiteProcess(traversable_tmp_path / "state")
    try:
        with pytest.raises(AssertionError) as caught:
            suite.start()
    finally:
        suite.kill_all()
    told = str(caught.value)
    assert "points up: wallet exited (exit code 2)" in told
    assert "app: token looks like a placeholder" in told  # from the wallet's log
    assert "REPLACE-ME-app-token" not in told
