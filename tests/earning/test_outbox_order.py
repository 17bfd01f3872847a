"""Reconciliation takes the least-tried pending credits first, so refused ones cannot starve the rest."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from earning.domain.credit import PendingCredit
from earning.main import MIGRATIONS
from earning.store.outbox import OutboxRepository
from earning.store.tables import credits
from points_platform.db import create_engine, migrate
from tests.conftest import NewDatabase

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def test_credits_the_wallet_keeps_refusing_go_behind_fresh_ones(new_database: NewDatabase) -> None:
    url = await new_database("outbox")
    await migrate(url, MIGRATIONS)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            outbox = OutboxRepository(conn)
            for n in range(3):
                await outbox.add_credit(PendingCredit(f"stuck-{n}", "u", 5, "watch_time", f"ev-{n}"), NOW)
            await conn.execute(update(credits).where(credits.c.request_id.like("stuck-%")).values(attempts=7))
            await outbox.add_credit(PendingCredit("fresh", "u", 5, "watch_time", "ev-fresh"), NOW)
        async with engine.connect() as conn:
            due = await OutboxRepository(conn).due_credits(created_by=NOW, limit=2, held_before=NOW)
        assert due[0].request_id == "fresh"
        assert len(due) == 2
    finally:
        await engine.dispose()
