"""Raffles: when ticket sales close, the seed commitment, and the reproducible draw."""

from __future__ import annotations

import hashlib
from datetime import datetime

from redemption.domain.item import ItemKind, ItemSnapshot


def draw_winners(seed: bytes, ticket_ids: list[str], winners: int) -> list[str]:
    """Winning ticket ids: reproducible from the seed and the ticket ids sorted ascending.

    Pick i takes index sha256(seed || i as 8 bytes big-endian) mod len(remaining) from the
    remaining sorted tickets; anyone with the revealed seed and the ticket list can replay it.
    """
    remaining = sorted(ticket_ids)
    picked: list[str] = []
    for i in range(min(winners, len(remaining))):
        digest = hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        picked.append(remaining.pop(int.from_bytes(digest, "big") % len(remaining)))
    return picked


def seed_hash(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def raffle_closed(item: ItemSnapshot | None, now: datetime) -> bool:
    """A raffle ticket's sales are over from the raffle's close instant on (half-open, as in the catalog):
    no Redeem starts, and no saga commits its funds, so the entries are final at the close."""
    return (item is not None and item.kind is ItemKind.RAFFLE_TICKET and item.sales_close_time is not None
            and now >= item.sales_close_time)


def commitment_too_late(sales_close: datetime | None, now: datetime) -> bool:
    """A raffle's seed commitment is published at or before its close: after it, whoever picks the seed
    would know every entry."""
    return sales_close is not None and now > sales_close

