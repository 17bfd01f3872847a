"""A user's standing: suspension and reinstatement, and forfeiture of points.

Suspension state lives in the wallet because every money path of a user passes through it; the
statements that move money refuse a suspended user themselves (docs/architecture.md, User
suspension). Forfeiture is a ledger operation like a debit: it joins the group committer and is
planned against the locked balance, so it never overdraws whatever races it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.clock import Clock
from points_platform.errors import invalid_field
from points_platform.validation import require_id, require_request_id, require_text
from wallet import domain
from wallet.domain import Currency, Kind, LedgerOp, Leg, UserStatusAction
from wallet.results import LedgerResult, UserStatusChangeView, UserStatusView
from wallet.store import suspensions
from wallet.use_cases.commands import ChangeUserStatus, ForfeitPoints

REASON_MAX = 256


def _required(field: str, value: str, reason: str) -> None:
    if not value:
        raise invalid_field(field, "is required", reason)


def _ticket(value: str) -> str:
    _required("ticket", value, "TICKET_REQUIRED")
    return require_id("ticket", value)


class Standing:
    """Suspend, reinstate, read a user's status; forfeit points through the wallet's ledger batches."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        submit: Callable[[LedgerOp], Awaitable[LedgerResult]],
        fingerprint: Callable[[object], str],
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._submit = submit
        self._fingerprint = fingerprint

    async def change(self, cmd: ChangeUserStatus, action: UserStatusAction) -> UserStatusView:
        require_request_id(cmd.request_id)
        require_id("user_id", cmd.user_id)
        _required("reason", cmd.reason, "REASON_REQUIRED")
        require_text("reason", cmd.reason, REASON_MAX)
        _ticket(cmd.ticket)
        _required("operator_id", cmd.operator_id, "OPERATOR_REQUIRED")
        require_id("operator_id", cmd.operator_id)
        change = suspensions.StatusChange(
            cmd.request_id, self._fingerprint(cmd), cmd.user_id, action, cmd.operator_id, cmd.reason, cmd.ticket
        )
        return await suspensions.change_status(self._engine, change, self._clock.now())

    async def status(self, user_id: str) -> tuple[UserStatusView, list[UserStatusChangeView]]:
        require_id("user_id", user_id)
        return await suspensions.user_status(self._engine, user_id)

    async def forfeit(self, cmd: ForfeitPoints) -> LedgerResult:
        require_request_id(cmd.request_id)
        require_id("user_id", cmd.user_id)
        if cmd.all and cmd.amount != 0:
            raise invalid_field("amount", "must be 0 when all is set")
        amount = 0 if cmd.all else cmd.amount
        if not cmd.all and not 0 < amount <= domain.MAX_AMOUNT:
            raise invalid_field("amount", f"must be between 1 and {domain.MAX_AMOUNT}, or set all")
        _required("reason", cmd.reason, "REASON_REQUIRED")
        require_text("reason", cmd.reason, 64)
        _ticket(cmd.ticket)
        return await self._submit(
            LedgerOp(
                op="forfeit",
                request_id=cmd.request_id,
                fingerprint=self._fingerprint(cmd),
                kind=Kind.FORFEIT,
                user_id=cmd.user_id,
                legs=(
                    Leg(cmd.user_id, domain.user_account(cmd.user_id), Currency.POINTS, -amount),
                    Leg("", domain.FORFEITED, Currency.POINTS, amount),
                ),
                reason=cmd.reason,
                reference=cmd.ticket,
                reason_class="forfeit",
                takes_all=cmd.all,
            )
        )
