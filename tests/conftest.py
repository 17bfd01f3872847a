"""Shared fixtures: a real PostgreSQL server for the whole run and fresh databases per test module.

POINTS_TEST_DATABASE_URL names an existing server (any database in it; we create our own);
without it an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from points_platform.db import drop_database, ensure_database
from points_platform.embedded_pg import EmbeddedPostgres
from tests.support.nats import nats_server  # noqa: F401  (a fixture every test may use)

REPO = Path(__file__).resolve().parent.parent

# CI replays the same generated examples every run (a red CI must be reproducible); local runs
# explore new examples each time.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def _server_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+asyncpg", database=None).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server (no database part)."""
    configured = os.environ.get("POINTS_TEST_DATABASE_URL")
    if configured:
        yield _server_url(configured)
        return
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", durable=False)
    pg.start()
    try:
        yield pg.url
    finally:
        pg.stop()


NewDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture(scope="session")
async def new_database(pg_server_url: str) -> AsyncIterator[NewDatabase]:
    """Factory for an empty, uniquely named database; dropped at the end of the run on a shared
    server (an embedded one is thrown away whole)."""
    created: list[str] = []

    async def make(label: str) -> str:
        url = f"{pg_server_url}/t_{label}_{uuid.uuid4().hex[:10]}"
        await ensure_database(url)
        created.append(url)
        return url

    yield make
    if os.environ.get("POINTS_TEST_DATABASE_URL"):
        for url in created:
            await drop_database(url)
