"""The rule versions, cached and refreshed whenever the stored latest version changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from earning.domain.model import Rules, rules_from_json
from earning.use_cases.ports import Database, Session

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RuleBook:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._versions: list[Rules] = []

    async def seed(self, path: Path, now: datetime) -> None:
        """Version 1 from the seed file, effective since forever, unless rules already exist."""
        rules = rules_from_json(json.loads(path.read_text()), version=1)
        async with self._db.transaction() as tx:
            await tx.admin.lock_rules()
            if await tx.admin.latest_rule_version() == 0:
                await tx.admin.insert_rules(rules, EPOCH, now)

    async def versions(self, tx: Session | None = None) -> list[Rules]:
        """All versions, oldest first (one cheap query when nothing changed)."""
        if tx is None:
            async with self._db.reading() as own:
                return await self.versions(own)
        latest = await tx.admin.latest_rule_version()
        if not self._versions or self._versions[-1].version != latest:
            self._versions = await tx.admin.all_rules()
        return self._versions

    async def cached(self) -> list[Rules]:
        """The versions as last loaded (loaded on first use); a batch compares the newest of
        these with the version its lock statement saw."""
        return self._versions or await self.versions()

    async def current(self) -> Rules:
        return (await self.versions())[-1]


def applicable(versions: list[Rules], occurred_at: datetime) -> Rules:
    """The newest version already in effect when the event occurred."""
    chosen = versions[0]
    for rules in versions:
        if rules.effective_from is not None and rules.effective_from <= occurred_at:
            chosen = rules
    return chosen
