"""User suspension: the suspended_users rows the money paths check, and the history of changes.

SuspendUser inserts the user's row, ReinstateUser deletes it, each in one transaction with its
history row and its stored reply (the shared idempotency table, keyed by the user). The money
paths read the row in the statement that moves the money (store/ledger.py's lock-and-lookup,
store/holds.py's reserve statement), so every such statement that starts after a suspension
committed sees it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.errors import FailedPrecondition
from points_platform.idempotency import idempotent
from points_platform.unit_of_work import Transaction, Transactions
from wallet import replies
from wallet.domain import UserStatusAction
from wallet.store.idempotency import request_key
from wallet.use_cases.ports import StatusChange
from wallet.use_cases.results import UserStatusChangeView, UserStatusView

HISTORY_LIMIT = 100


_RECORD = text(
    "INSERT INTO user_status_changes (user_id, action, operator_id, reason, ticket, request_id, create_time)"
    " VALUES (:u, :action, :operator, :reason, :ticket, :rid, :now) RETURNING change_id"
)
# A user suspended already keeps the first suspension (nothing inserted: USER_ALREADY_SUSPENDED).
_SUSPEND = text(
    "INSERT INTO suspended_users (user_id, change_id) VALUES (:u, :change) ON CONFLICT DO NOTHING RETURNING 1"
)
_REINSTATE = text("DELETE FROM suspended_users WHERE user_id = :u RETURNING 1")


def _change_view(row: Any) -> UserStatusChangeView:
    return UserStatusChangeView(
        UserStatusAction(row.action), row.operator_id, row.reason, row.ticket, row.create_time, row.request_id
    )


async def change_status(transactions: Transactions, change: StatusChange, now: datetime) -> UserStatusView:
    """Suspend or reinstate (by change.action); replays the stored answer of the same request."""
    method = "SuspendUser" if change.action is UserStatusAction.SUSPENDED else "ReinstateUser"

    async def work(tx: Transaction) -> pb.SuspendUserResponse | pb.ReinstateUserResponse:
        conn = tx.connection
        change_id = (
            await conn.execute(
                _RECORD,
                {
                    "u": change.user_id,
                    "action": int(change.action),
                    "operator": change.operator_id,
                    "reason": change.reason,
                    "ticket": change.ticket,
                    "rid": change.request_id,
                    "now": now,
                },
            )
        ).scalar_one()
        if change.action is UserStatusAction.SUSPENDED:
            done = (await conn.execute(_SUSPEND, {"u": change.user_id, "change": change_id})).first()
            if done is None:
                raise FailedPrecondition(
                    "USER_ALREADY_SUSPENDED", "the user is suspended already", metadata={"user_id": change.user_id}
                )
        elif (await conn.execute(_REINSTATE, {"u": change.user_id})).first() is None:
            raise FailedPrecondition(
                "USER_NOT_SUSPENDED", "the user is not suspended", metadata={"user_id": change.user_id}
            )
        view = UserStatusView(
            change.user_id,
            change.action is UserStatusAction.SUSPENDED,
            UserStatusChangeView(
                change.action, change.operator_id, change.reason, change.ticket, now, change.request_id
            ),
        )
        return replies.status_reply(method, view)

    key = request_key(method, change.user_id, change.request_id, change.fingerprint)
    reply_type = pb.SuspendUserResponse if change.action is UserStatusAction.SUSPENDED else pb.ReinstateUserResponse
    return replies.user_status_view(await idempotent(transactions, key, reply_type, work))


async def _history(conn: AsyncConnection, user_id: str, limit: int) -> list[UserStatusChangeView]:
    rows = await conn.execute(
        text(
            "SELECT action, operator_id, reason, ticket, create_time, request_id FROM user_status_changes"
            " WHERE user_id = :u ORDER BY change_id DESC LIMIT :n"
        ),
        {"u": user_id, "n": limit},
    )
    return [_change_view(r) for r in rows]


async def user_status(engine: AsyncEngine, user_id: str) -> tuple[UserStatusView, list[UserStatusChangeView]]:
    """The user's status and history (newest first, at most HISTORY_LIMIT), in one snapshot."""
    async with engine.connect() as conn:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        suspended = (
            await conn.execute(text("SELECT 1 FROM suspended_users WHERE user_id = :u"), {"u": user_id})
        ).first() is not None
        history = await _history(conn, user_id, HISTORY_LIMIT)
    return UserStatusView(user_id, suspended, history[0] if history else None), history
