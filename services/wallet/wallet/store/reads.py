"""Read models: balances, a user's ledger history, holds."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.errors import NotFound
from points_platform.read_pool import ReadPool
from wallet.domain import Currency, Kind, user_account
from wallet.store.holds import hold_record_view, hold_user
from wallet.store.postgres import driver
from wallet.use_cases.results import BalanceView, HoldView, LedgerEntryView

_NONE = (0, 0)  # an account never credited
# Hot reads run on the raw asyncpg connection (statement prepared once per connection).
_BALANCES = "SELECT currency, available, held FROM accounts WHERE user_id = $1"
_HOLD = (
    "SELECT hold_id, user_id, currency, amount, committed_amount, state, reference, expire_time, create_time,"
    " resolve_time, refunded_amount FROM holds WHERE user_id = $2 AND hold_id = $1"
)


async def balances(pool: ReadPool, user_id: str, currencies: Sequence[Currency]) -> list[BalanceView]:
    """One statement on the read pool: autocommit, no transaction, no engine checkout."""
    rows = await pool.fetch(_BALANCES, user_id)
    found = {r[0]: (r[1], r[2]) for r in rows}
    return [BalanceView(user_id, c, *found.get(c, _NONE)) for c in currencies]


async def ledger_entries(
    engine: AsyncEngine, user_id: str, currency: Currency | None, before_posting: int | None, limit: int
) -> tuple[list[LedgerEntryView], int | None]:
    """Newest first; returns the entries and the posting id to continue before (None = last page)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT p.posting_id, p.transaction_id, p.currency, p.amount, p.balance_after,"
                    " t.reason, t.reference, t.create_time, t.kind"
                    " FROM postings p"
                    " JOIN transactions t ON t.user_id = p.user_id AND t.transaction_id = p.transaction_id"
                    " WHERE p.user_id = :u AND p.account = :account"
                    " AND (CAST(:c AS smallint) IS NULL OR p.currency = :c)"
                    " AND (CAST(:before AS bigint) IS NULL OR p.posting_id < :before)"
                    " ORDER BY p.posting_id DESC LIMIT :n"
                ),
                {"u": user_id, "account": user_account(user_id), "c": int(currency) if currency else None,
                 "before": before_posting, "n": limit + 1},
            )
        ).all()
    entries = [
        LedgerEntryView(
            transaction_id=r.transaction_id,
            currency=Currency(r.currency),
            amount=r.amount,
            reason=r.reason,
            reference=r.reference,
            create_time=r.create_time,
            balance_after=r.balance_after if r.balance_after is not None else 0,
            kind=Kind(r.kind),
        )
        for r in rows[:limit]
    ]
    more = rows[limit - 1].posting_id if len(rows) > limit else None
    return entries, more


async def get_hold(engine: AsyncEngine, hold_id: str) -> HoldView:
    async with engine.connect() as conn:
        raw = await driver(conn)
        row = await raw.fetchrow(_HOLD, hold_id, await hold_user(raw, hold_id))
    if row is None:
        raise NotFound("HOLD_NOT_FOUND", "no such hold", metadata={"hold_id": hold_id})
    return hold_record_view(row)
