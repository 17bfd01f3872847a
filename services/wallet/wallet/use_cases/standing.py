"""A user's standing: suspension and reinstatement, and forfeiture of points.

Suspension state lives in the wallet because every money path of a user passes through it; the
statements that move money refuse a suspended user themselves (docs/architecture.md, User
suspension). Forfeiture is a ledger operation like a debit: it joins the group committer and is
planned against the locked balance, so it never overdraws whatever races it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from points_platform.clock import Clock
from wallet import domain
from wallet.domain import Currency, Kind, LedgerOp, Leg, UserStatusAction
from wallet.use_cases.commands import ChangeUserStatus, ForfeitPoints, fingerprint
from wallet.use_cases.ports import StandingStore, StatusChange
from wallet.use_cases.results import LedgerResult, UserStatusChangeView, UserStatusView


class Standing:
    """Suspend, reinstate, read a user's status; forfeit points through the wallet's ledger batches."""

    def __init__(
        self, store: StandingStore, clock: Clock, submit: Callable[[LedgerOp], Awaitable[LedgerResult]]
    ) -> None:
        self._store = store
        self._clock = clock
        self._submit = submit

    async def change(self, cmd: ChangeUserStatus, action: UserStatusAction) -> UserStatusView:
        change = StatusChange(
            cmd.request_id, fingerprint(cmd), cmd.user_id, action, cmd.operator_id, cmd.reason, cmd.ticket
        )
        return await self._store.change_status(change, self._clock.now())

    async def status(self, user_id: str) -> tuple[UserStatusView, list[UserStatusChangeView]]:
        return await self._store.user_status(user_id)

    async def forfeit(self, cmd: ForfeitPoints) -> LedgerResult:
        amount = 0 if cmd.all else cmd.amount
        return await self._submit(
            LedgerOp(
                op="forfeit",
                request_id=cmd.request_id,
                fingerprint=fingerprint(cmd),
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
