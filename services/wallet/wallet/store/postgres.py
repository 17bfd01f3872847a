"""What the store asks of PostgreSQL beyond SQLAlchemy: the raw asyncpg connection of the hot
paths, and keys ordered for its B-tree indexes."""

from __future__ import annotations

import os
import time

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection


def new_id() -> str:
    """32 hex digits: the time in milliseconds (12), then 80 random bits (20).

    Time-ordered like a UUIDv7, so the batch's new keys land on the rightmost pages of the
    transaction indexes instead of on a hundred random ones (each page first dirtied after a
    checkpoint costs a full 8 kB image in the WAL)."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The raw asyncpg connection under a SQLAlchemy one (hot paths: statements prepared once)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection  # type: ignore[return-value]
