"""The embedded PostgreSQL authenticates by password (SCRAM), kept beside the cluster."""

from __future__ import annotations

import stat
from pathlib import Path

import asyncpg
import pytest

from points_platform.db import database_url
from points_platform.embedded_pg import EmbeddedPostgres

pytestmark = pytest.mark.slow


def _dsn(url: str) -> str:
    return database_url(url, "postgres").replace("+asyncpg", "")


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_refuses_a_connection_without_the_password_and_keeps_it_across_restarts(
    traversable_tmp_path: Path,
) -> None:
    pg = EmbeddedPostgres(traversable_tmp_path / "pg" / "data", durable=False)
    pg.start()
    try:
        password_file = traversable_tmp_path / "pg" / "postgres-password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        password = password_file.read_text().strip()
        assert len(password) >= 32
        assert await _select_one(_dsn(pg.url)) == 1
        for anonymous in (
            f"postgresql://postgres@127.0.0.1:{pg.port}/postgres",
            f"postgresql://postgres:wrong@127.0.0.1:{pg.port}/postgres",
        ):
            with pytest.raises(asyncpg.InvalidPasswordError):
                await _select_one(anonymous)
    finally:
        pg.stop()

    again = EmbeddedPostgres(traversable_tmp_path / "pg" / "data", durable=False)
    again.start()
    try:
        assert password_file.read_text().strip() == password
        assert await _select_one(_dsn(again.url)) == 1
    finally:
        again.stop()


async def test_a_cluster_without_a_password_file_gets_a_new_password(traversable_tmp_path: Path) -> None:
    """A cluster made before passwords (trust authentication), or whose password file was lost."""
    pg = EmbeddedPostgres(traversable_tmp_path / "pg" / "data", durable=False)
    pg.start()
    pg.stop()
    password_file = traversable_tmp_path / "pg" / "postgres-password"
    old = password_file.read_text().strip()
    password_file.unlink()

    again = EmbeddedPostgres(traversable_tmp_path / "pg" / "data", durable=False)
    again.start()
    try:
        assert password_file.read_text().strip() != old
        assert await _select_one(_dsn(again.url)) == 1
        with pytest.raises(asyncpg.InvalidPasswordError):
            await _select_one(f"postgresql://postgres:{old}@127.0.0.1:{again.port}/postgres")
    finally:
        again.stop()
