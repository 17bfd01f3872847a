"""Shared fixtures: a real PostgreSQL server for the whole run and fresh databases per test module.

POINTS_TEST_DATABASE_URL names an existing server (any database in it; we create our own);
without it an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from points_platform.db import database_url, drop_database, ensure_database
from points_platform.embedded_pg import EmbeddedPostgres
from tests.support.nats import (  # noqa: F401 - fixtures every test may use
    module_nats_client,
    module_nats_server,
    nats_server,
)

REPO = Path(__file__).resolve().parent.parent

# CI replays the same generated examples every run (a red CI must be reproducible); local runs
# explore new examples each time.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def _traversable_dir() -> Path:
    """A fresh directory outside pytest's own: pytest resets /tmp/pytest-of-<user> to 0700 whenever
    any run starts (several run at once here), which, as root, cuts the embedded cluster's own
    user off from its data directory mid-test."""
    return Path(tempfile.mkdtemp(prefix="points-test-"))


@pytest.fixture
def traversable_tmp_path() -> Iterator[Path]:
    """Like `tmp_path`, for tests that run an embedded PostgreSQL (`points up` included)."""
    path = _traversable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server (no database part)."""
    configured = os.environ.get("POINTS_TEST_DATABASE_URL")
    if configured:
        yield database_url(configured)
        return
    root = _traversable_dir()
    pg = EmbeddedPostgres(root / "pg" / "data", durable=False)
    pg.start()
    try:
        yield pg.url
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


NewDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture(scope="session")
async def new_database(pg_server_url: str) -> AsyncIterator[NewDatabase]:
    """Factory for an empty, uniquely named database; dropped at the end of the run on a shared
    server (an embedded one is thrown away whole)."""
    created: list[str] = []

    async def make(label: str) -> str:
        url = database_url(pg_server_url, f"t_{label}_{uuid.uuid4().hex[:10]}")
        await ensure_database(url)
        created.append(url)
        return url

    yield make
    if os.environ.get("POINTS_TEST_DATABASE_URL"):
        for url in created:
            await drop_database(url)
