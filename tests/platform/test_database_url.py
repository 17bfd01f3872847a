"""One helper turns any PostgreSQL URL into a service's (or the bare server's) asyncpg URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from points_cli.suite import SuiteConfig, service_env
from points_platform.db import database_url

SERVER = "postgresql+asyncpg://postgres:pw@127.0.0.1:5432"


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://postgres:pw@127.0.0.1:5432/postgres",  # README's example for the tests
        "postgresql://postgres:pw@127.0.0.1:5432",
        "postgresql+asyncpg://postgres:pw@127.0.0.1:5432/anything",
    ],
)
def test_the_database_part_is_replaced_not_appended(given: str) -> None:
    assert database_url(given) == SERVER
    assert database_url(given, "points_wallet") == SERVER + "/points_wallet"


def test_query_options_survive() -> None:
    assert database_url("postgresql://u@h/db?ssl=require", "points_wallet") == (
        "postgresql+asyncpg://u@h/points_wallet?ssl=require"
    )


def test_points_up_gives_each_service_its_own_database_on_the_given_server(tmp_path: Path) -> None:
    cfg = SuiteConfig(
        tmp_path,
        "",
        "127.0.0.1",
        {s: 1 for s in ("wallet", "catalog", "earning", "redemption")},
        {s: 2 for s in ("wallet", "catalog", "earning", "redemption")},
    )
    server = database_url("postgresql://postgres:pw@127.0.0.1:5432/postgres")
    env = service_env(cfg, "catalog", server)
    assert env["POINTS_CATALOG_DATABASE_URL"] == SERVER + "/points_catalog"
