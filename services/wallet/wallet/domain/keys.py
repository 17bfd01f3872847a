"""Keys by user (issue 15, docs/scaling.md): the user a hold or payout id names, and the user each
posting is filed under, so that every row of one user's request lands where that user's rows are.

Ids: a new hold or payout id is `<prefix>_<32 hex>:<user_id>` — the user is read back from the id
(`id_owner`), so CommitHold/ReleaseHold/RefundHold/CompletePayout find the row by its full key. An
id is at most 128 characters (the ids' validation, and what callers store): a user id too long to
fit, and every id made before, is `<prefix>_<32 hex>` and names no user (`id_owner` is None); its
row is then found by the id alone.

Postings: a user leg is filed under its user; a system leg under the user whose leg moves the same
currency in the transaction (a gift's COINS system legs under the sender, its DIAMONDS one under the
creator), so each user's share of a transaction sums to zero per currency and no key gathers every
system leg.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from wallet.domain.currencies import Currency

MAX_ID_LENGTH = 128
_HEX = set(string.hexdigits.lower())


def owned_id(prefix: str, unique: str, user_id: str) -> str:
    """`unique` is 32 hex digits."""
    named = f"{prefix}_{unique}:{user_id}"
    return named if len(named) <= MAX_ID_LENGTH else f"{prefix}_{unique}"


def id_owner(prefix: str, value: str) -> str | None:
    """The user a `owned_id` names, or None (an older id, or a user id too long to fit)."""
    start = len(prefix) + 1
    if not value.startswith(f"{prefix}_") or len(value) <= start + 33 or value[start + 32] != ":":
        return None
    if not set(value[start:start + 32]) <= _HEX:
        return None
    return value[start + 33:]


def filed_under(legs: Sequence[tuple[str, Currency]], default: str) -> list[str]:
    """The user each leg (its user_id, "" for a system account; its currency) is stored under:
    its own user, else the user of a user leg in its currency, else `default` (the transaction's user)."""
    by_currency: dict[Currency, str] = {}
    for user_id, currency in legs:
        if user_id:
            by_currency.setdefault(currency, user_id)
    return [user_id or by_currency.get(currency, default) for user_id, currency in legs]
