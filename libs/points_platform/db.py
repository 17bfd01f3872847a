"""Async SQLAlchemy engine per service, database creation, and alembic migrations on start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import sqlalchemy.event
import sqlalchemy.exc
import structlog
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from points_platform.read_pool import ReadPoolExhaustedError

log = structlog.get_logger("points.db")

T = TypeVar("T")

# PostgreSQL SQLSTATEs worth a retry: serialization failure, deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def create_engine(url: str, *, pool_size: int = 10, custom_plans: bool = False) -> AsyncEngine:
    """The one engine of a service process: a fixed pool, no overflow. A burst waits for a pooled
    connection: an overflow connection is closed when returned, so under load every burst would pay
    a backend start plus asyncpg's type introspection (docs/benchmarks.md).

    `custom_plans`: plan every execution of a prepared statement with its actual parameters. For
    the set-based statements (arrays joined with `unnest`) PostgreSQL otherwise settles on a generic
    plan chosen while the tables were small — hash joins over sequential scans — and keeps it until
    the next ANALYZE: on a fresh database the cost per batch would grow with every row inserted."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}} if custom_plans else {},
    )
    sqlalchemy.event.listen(engine.sync_engine, "checkout", _drop_if_closed)
    return engine


def _drop_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server closed (restart, failover, terminated session) is replaced at
    checkout instead of failing the next call. Hot paths use the raw asyncpg connection, whose
    failures SQLAlchemy never sees; asking asyncpg costs no round trip (unlike a pre-ping).

    So is one that came back with a transaction still open: a call cancelled while its BEGIN was
    in flight leaves asyncpg in a transaction that SQLAlchemy's reset-on-return does not know of.
    Handed on, the next user's autocommit statements would run inside it and be rolled back."""
    driver = dbapi_connection.driver_connection
    if driver.is_closed():
        raise sqlalchemy.exc.DisconnectionError("closed by the server")
    if driver.is_in_transaction():
        raise sqlalchemy.exc.DisconnectionError("returned with a transaction open")


def database_url(url: str, database: str | None = None) -> str:
    """`url` (postgresql:// or postgresql+asyncpg://) as an asyncpg URL naming `database`, or only
    the server when None. Built anew: `URL.set(database=None)` ignores the None and keeps the
    name, so `postgresql://host/postgres` would have become `.../postgres/points_wallet`."""
    parsed = make_url(url)
    server = URL.create(
        "postgresql+asyncpg", parsed.username, parsed.password, parsed.host, parsed.port, database, parsed.query
    )
    return server.render_as_string(hide_password=False)


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def ensure_database(url: str) -> None:
    """Create the URL's database if missing (connecting to the server's `postgres` db)."""
    name = make_url(url).database
    if not name:
        raise ValueError("database URL names no database")
    conn = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("database_created", database=name)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # created concurrently by a sibling
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the URL's database (tests)."""
    name = make_url(url).database
    conn = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run_migrations(url: str, script_location: Path) -> None:
    """Upgrade the database to head with the service's own alembic scripts (blocking)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, "head")


async def migrate(url: str, script_location: Path) -> None:
    """Create the database if needed and migrate it; alembic runs its own loop in a thread."""
    await ensure_database(url)
    await asyncio.to_thread(run_migrations, url, script_location)


async def is_reachable(engine: AsyncEngine, timeout: float = 2.0) -> bool:
    """True when a trivial query answers in time: what health reports."""
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means not reachable
        return False


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind a SQLAlchemy/asyncpg error, if any."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None), exc):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


# SQLSTATEs of a database that is down, restarting or refusing connections (class 08: connection
# exceptions; 57P01-57P03: shut down or starting; 53300: too many connections; 55000 is what a
# database closed to connections answers, checked by its message).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_UNAVAILABLE_ERRORS = (
    ConnectionError,  # refused, reset, broken pipe: the server is not there
    asyncpg.exceptions.ConnectionDoesNotExistError,  # the connection died under a statement
    sqlalchemy.exc.TimeoutError,  # every pooled connection stayed busy for pool_timeout
    ReadPoolExhaustedError,  # the same for the raw read pool
)


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) says the database cannot be reached right now: a
    retryable outage (UNAVAILABLE to the caller), not a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE_ERRORS):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(current):
            return True  # a pooled connection whose server side is gone (raw asyncpg hot paths)
        if isinstance(current, asyncpg.exceptions.InternalClientError) and "cannot switch to state" in str(current):
            return True  # the same, noticed while its last operation was still unfinished
        code = getattr(current, "sqlstate", None)
        if isinstance(code, str) and (
            code.startswith("08") or code in _UNAVAILABLE_SQLSTATES
            or (code == "55000" and "not currently accepting connections" in str(current))
        ):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
