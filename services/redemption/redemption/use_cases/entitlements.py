"""Using and reading entitlements: ConsumeEntitlement, GetEntitlement, and every entitlement's state as of now.

Expiry is computed at read time from the injected clock (`Usage.state_at`): no sweeper has to run for an
entitlement to show EXPIRED or to be refused, and the stored state stays ACTIVE, so nothing is written
when time passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

import structlog
from google.protobuf.message import Message

from points_platform.clock import Clock
from points_platform.errors import FailedPrecondition, NotFound
from points_platform.idempotency import FoldedStorage, Recorded, RequestKey, fingerprint_from_digest, idempotent
from points_platform.unit_of_work import Transaction, Transactions
from redemption import metrics
from redemption.use_cases.commands import ConsumeCommand
from redemption.use_cases.ports import EntitlementRepository
from redemption.use_cases.records import Consumption, EntitlementRow, UseRow

log = structlog.get_logger("redemption")
# GetEntitlement shows this many of the latest uses (an unlimited entitlement may have many).
USES_SHOWN = 100
R = TypeVar("R", bound=Message)


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
    def __init__(self, transactions: Transactions, store: EntitlementRepository, clock: Clock) -> None:
        self._transactions = transactions
        self._store = store
        self._clock = clock

    async def consume(self, cmd: ConsumeCommand, key: RequestKey, reply_type: type[R],
                      answer: Callable[[Consumption], R]) -> R:
        """One use, or the first answer under the request's key (`answer` of the use). The rule runs with the
        entitlement locked. The use row is the stored answer (folded storage): it keeps the request digest
        (`cmd.fingerprint`), from which the key's fingerprint is derived."""
        now = self._clock.now()

        def use_once(row: EntitlementRow, redemption_completed: bool) -> EntitlementRow:
            refusal = row.usage.consume_refusal(now, redemption_completed)
            if refusal:
                metrics.entitlement_use(row.kind, refusal)
                raise FailedPrecondition(refusal, metadata=_facts(row))
            after = row.usage.after_use()
            return replace(row, use_count=after.use_count, state=after.state)

        async def recorded(tx: Transaction, key: RequestKey) -> Recorded | None:
            stored = await self._store.stored_use(tx, key.request_id)
            if stored is None:
                return None
            return Recorded(fingerprint_from_digest(key.method, stored.fingerprint), answer(stored))

        made: list[tuple[Consumption, R]] = []

        async def use(tx: Transaction) -> R:
            result = await self._store.record_use(tx, cmd, now, use_once)
            if result is None:
                raise entitlement_not_found(cmd.entitlement_id)
            made.append((result, answer(result)))
            return made[-1][1]

        reply = await idempotent(self._transactions, key, reply_type, use, storage=FoldedStorage(recorded))
        if made and made[-1][1] is reply:  # this call's use committed (a replay answers a rebuilt reply)
            result = made[-1][0]
            metrics.entitlement_use(result.entitlement.kind, metrics.USED)
            log.info("entitlement_consumed", entitlement_id=result.entitlement.entitlement_id,
                     use_number=result.use.use_number, caller=result.use.caller)
        return reply

    async def get(self, entitlement_id: str, discount_code: str) -> tuple[EntitlementRow, list[UseRow]]:
        row = await self._store.get(entitlement_id, discount_code)
        if row is None:
            raise entitlement_not_found(entitlement_id)
        return shown(row, self._clock.now()), await self._store.uses(row.entitlement_id, USES_SHOWN)
