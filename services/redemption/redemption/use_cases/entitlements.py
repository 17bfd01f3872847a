"""Using and reading entitlements: ConsumeEntitlement, GetEntitlement, and every entitlement's state as of now.

Expiry is computed at read time from the injected clock (`Usage.state_at`): no sweeper has to run for an
entitlement to show EXPIRED or to be refused, and the stored state stays ACTIVE, so nothing is written
when time passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from points_platform.clock import Clock
from points_platform.errors import FailedPrecondition, NotFound, idempotency_key_reused
from redemption import metrics
from redemption.store import Consumption, EntitlementRow, EntitlementStore, UseRequest, UseRow

log = structlog.get_logger("redemption")
# GetEntitlement shows this many of the latest uses (an unlimited entitlement may have many).
USES_SHOWN = 100


@dataclass(frozen=True)
class ConsumeCommand:
    request_id: str
    fingerprint: str
    entitlement_id: str  # exactly one of entitlement_id / discount_code
    discount_code: str
    caller: str
    reference: str


def shown(row: EntitlementRow, now: datetime) -> EntitlementRow:
    """The entitlement as a reader sees it now (EXPIRED once past its expiry)."""
    return replace(row, state=row.usage.state_at(now))


def _facts(row: EntitlementRow) -> dict[str, str]:
    return {"entitlement_id": row.entitlement_id, "use_count": str(row.use_count),
            "max_uses": "unlimited" if row.unlimited_uses else str(row.max_uses),
            "expire_time": row.expire_time.isoformat() if row.expire_time else ""}


def entitlement_not_found(entitlement_id: str) -> NotFound:
    # A code that matched nothing is not echoed back: it may be someone's guess at another user's code.
    return NotFound("ENTITLEMENT_NOT_FOUND", metadata={"entitlement_id": entitlement_id} if entitlement_id else {})


class EntitlementUses:
    def __init__(self, store: EntitlementStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def consume(self, cmd: ConsumeCommand) -> Consumption:
        """One use, or the first answer under cmd.request_id. The rule runs with the entitlement locked."""
        now = self._clock.now()

        def use_once(row: EntitlementRow, redemption_completed: bool) -> EntitlementRow:
            refusal = row.usage.consume_refusal(now, redemption_completed)
            if refusal:
                metrics.entitlement_use(row.kind, refusal)
                raise FailedPrecondition(refusal, metadata=_facts(row))
            after = row.usage.after_use()
            return replace(row, use_count=after.use_count, state=after.state)

        result = await self._store.consume(UseRequest(
            cmd.request_id, cmd.fingerprint, cmd.entitlement_id, cmd.discount_code, cmd.caller, cmd.reference, now),
            use_once)
        if result is None:
            raise entitlement_not_found(cmd.entitlement_id)
        if result.fingerprint != cmd.fingerprint:
            raise idempotency_key_reused(cmd.request_id)
        if not result.replayed:
            metrics.entitlement_use(result.entitlement.kind, metrics.USED)
            log.info("entitlement_consumed", entitlement_id=result.entitlement.entitlement_id,
                     use_number=result.use.use_number, caller=result.use.caller)
        return result

    async def get(self, entitlement_id: str, discount_code: str) -> tuple[EntitlementRow, list[UseRow]]:
        row = await self._store.get(entitlement_id, discount_code)
        if row is None:
            raise entitlement_not_found(entitlement_id)
        return shown(row, self._clock.now()), await self._store.uses(row.entitlement_id, USES_SHOWN)
