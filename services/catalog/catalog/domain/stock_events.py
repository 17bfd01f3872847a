"""When a limited item's stock crosses a threshold, and what other backends are told (docs/events.md).

A crossing is a move of the units free to reserve (`Stock.available`) from above a threshold to at
or below it: the low-stock threshold (a setting) and zero (sold out). Each threshold is judged on
its own, so one reservation taking the last units above the low threshold to zero crosses both.
Moves back up (a release, an expiry, a return, a restock) emit nothing; they re-arm the threshold,
so the next move down crosses it again: one event per crossing, not one per reservation below it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StockLow:
    item_id: str
    item_version: int
    remaining: int
    threshold: int


@dataclass(frozen=True)
class StockSoldOut:
    item_id: str
    item_version: int
    total_stock: int


StockEvent = StockLow | StockSoldOut


def crosses(before: int, after: int, threshold: int) -> bool:
    return before > threshold >= after


def stock_events(
    item_id: str, item_version: int, *, before: int, after: int, total: int, low_threshold: int
) -> list[StockEvent]:
    """The events of one move of a limited item's free units from `before` to `after`.

    `low_threshold` 0 turns the low-stock event off (sold out says the same thing at zero).
    """
    events: list[StockEvent] = []
    if low_threshold > 0 and crosses(before, after, low_threshold):
        events.append(StockLow(item_id, item_version, after, low_threshold))
    if crosses(before, after, 0):
        events.append(StockSoldOut(item_id, item_version, total))
    return events
