"""Coalescing: concurrent single events share one batch (one transaction, one wallet call).

`submit` queues an event and awaits its own outcome. While batches are being recorded, new
events queue up; the next flush takes all of them (up to `max_batch`), so under load many
RecordActivity calls cost one set-based transaction, and at low load an event waits for
nothing. A batch that fails as a whole (an unexpected error) is retried one event per batch,
so one bad event never fails its neighbours. (The same idea as the wallet's group commit.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("earning.coalescing")

Op = TypeVar("Op")
R = TypeVar("R")


class Coalescer(Generic[Op, R]):
    def __init__(
        self, apply_batch: Callable[[Sequence[Op]], Awaitable[Sequence[R]]], *, max_batch: int, concurrency: int
    ) -> None:
        self._apply_batch = apply_batch
        self._max_batch = max(1, max_batch)
        self._concurrency = max(1, concurrency)
        self._pending: deque[tuple[Op, asyncio.Future[R]]] = deque()
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0  # observable in tests: how many batches carried the events
        self.largest_batch = 0

    async def submit(self, op: Op) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if len(self._flushers) < self._concurrency:
            task = asyncio.create_task(self._flush(), name="earning-coalescer")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        # The event may be recorded even if this caller goes away; a retry replays it.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            ops = [op for op, _ in batch]
            outcomes: Sequence[R | BaseException]
            try:
                outcomes = await self._apply_batch(ops)
            except Exception as exc:  # noqa: BLE001 - fall back to one event per batch
                if len(ops) == 1:
                    outcomes = [exc]
                else:
                    log.warning("coalesced_batch_fallback", size=len(ops), error=type(exc).__name__)
                    outcomes = [await self._apply_alone(op) for op in ops]
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _apply_alone(self, op: Op) -> R | BaseException:
        try:
            return (await self._apply_batch([op]))[0]
        except Exception as exc:  # noqa: BLE001 - this event's own failure, for its own caller
            return exc

    async def drain(self) -> None:
        """Wait until every submitted event has its outcome (shutdown)."""
        while self._flushers:
            await asyncio.gather(*list(self._flushers), return_exceptions=True)
