"""Gift history: a user's SendGift transactions, read from the ledger they were posted to."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from wallet.domain import Currency, Kind
from wallet.use_cases.results import GiftView

# The user's own leg of each gift (the sender's COINS debit, the creator's DIAMONDS credit) walks
# the postings key (user_id, currency, posting_id) newest first, so a page costs its rows whatever
# the history's length; the gift's other user leg gives the other party and amount (user legs:
# account user:<user_id>; the other party's leg is filed under that party, so a sharded wallet
# reads it from its shard).
_GIFTS = text(
    "SELECT p.posting_id, t.transaction_id, t.reference, t.create_time,"
    " s.user_id AS sender_id, -s.amount AS coins, c.user_id AS creator_id, c.amount AS diamonds"
    " FROM postings p"
    " JOIN transactions t ON t.user_id = p.user_id AND t.transaction_id = p.transaction_id AND t.kind = :gift"
    " JOIN postings s ON s.transaction_id = t.transaction_id AND s.currency = :coins"
    " AND s.account = 'user:' || s.user_id"
    " JOIN postings c ON c.transaction_id = t.transaction_id AND c.currency = :diamonds"
    " AND c.account = 'user:' || c.user_id"
    " WHERE p.user_id = :u AND p.account = 'user:' || p.user_id AND p.currency = :side"
    " AND (CAST(:before AS bigint) IS NULL OR p.posting_id < :before)"
    " ORDER BY p.posting_id DESC LIMIT :n"
)


async def gifts(
    engine: AsyncEngine, user_id: str, as_creator: bool, before_posting: int | None, limit: int
) -> tuple[list[GiftView], int | None]:
    """Newest first; the gifts and the posting id to continue before (None = last page)."""
    params = {
        "gift": int(Kind.GIFT),
        "coins": int(Currency.COINS),
        "diamonds": int(Currency.DIAMONDS),
        "u": user_id,
        "side": int(Currency.DIAMONDS if as_creator else Currency.COINS),
        "before": before_posting,
        "n": limit + 1,
    }
    async with engine.connect() as conn:
        rows = (await conn.execute(_GIFTS, params)).all()
    views = [
        GiftView(r.transaction_id, r.reference, r.sender_id, r.creator_id, r.coins, r.diamonds, r.create_time)
        for r in rows[:limit]
    ]
    return views, rows[limit - 1].posting_id if len(rows) > limit else None
