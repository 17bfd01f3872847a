"""The catalog's domain events as outbox rows (`points_platform.outbox`, docs/events.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.domain import StockEvent, StockLow
from points.events.v1 import catalog_pb2
from points_platform.events import new_event
from points_platform.outbox import Outbox

SERVICE = "catalog"
# Stock events are about no user: they partition by item id. Changed only with an empty backlog
# (an item's pending rows would otherwise sit in two partitions).
PARTITIONS = 16


def _payload(event: StockEvent) -> Message:
    if isinstance(event, StockLow):
        return catalog_pb2.StockLow(item_id=event.item_id, remaining=event.remaining, threshold=event.threshold)
    return catalog_pb2.StockSoldOut(item_id=event.item_id, total_stock=event.total_stock)


class EventRepository:
    """Events of one transaction (`use_cases.ports.EventStore`)."""

    def __init__(self, conn: AsyncConnection, outbox: Outbox) -> None:
        self.conn = conn
        self._outbox = outbox

    async def append(self, events: Sequence[StockEvent], occurred_time: datetime) -> None:
        await self._outbox.append(self.conn, [
            new_event(SERVICE, _payload(e), user_id="", aggregate_id=e.item_id, aggregate_version=e.item_version,
                      occurred_time=occurred_time)
            for e in events
        ])
