"""Group commit: concurrent operations share one batch (one database transaction).

Callers `submit` an operation and await its own result. While a batch is in the database,
new operations queue up; the next flush takes all of them (up to `max_batch`), so under load
many calls cost one transaction (one fsync) — the wallet's hot account gets one UPDATE for many
credits, earning records many single events set-based — and at low load an operation waits for
nothing. A batch that fails as a whole (any unexpected error) is re-applied one operation per
batch, so one bad operation never poisons its neighbours.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("points.group_commit")

Op = TypeVar("Op")
R = TypeVar("R")



class GroupCommitter(Generic[Op, R]):
    def __init__(
        self,
        apply_batch: Callable[[Sequence[Op]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 256,
        concurrency: int = 2,
    ) -> None:
        self._apply_batch = apply_batch
        self._max_batch = max(1, max_batch)
        self._concurrency = max(1, concurrency)
        self._pending: deque[tuple[Op, asyncio.Future[R]]] = deque()
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0  # observable in tests: how many transactions carried the ops
        self.largest_batch = 0

    async def submit(self, op: Op) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._start_flusher()
        # The op may be applied even if this caller goes away; a retry replays it.
        return await asyncio.shield(future)

    async def submit_many(self, ops: Sequence[Op]) -> list[R | BaseException]:
        """Queue several ops at once (they share batches with everyone else's); each op's
        own outcome, in order, errors included."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in ops]
        self._pending.extend(zip(ops, futures, strict=True))
        self._start_flusher()
        if futures:
            await asyncio.shield(asyncio.wait(futures))
        return [f.exception() or f.result() for f in futures]

    def _start_flusher(self) -> None:
        # A finished flusher stays in the set until its done-callback runs: count only live ones.
        if sum(not t.done() for t in self._flushers) < self._concurrency:
            # A flusher serves many calls, so it runs in an empty context: a copy of the submitting
            # call's context would tag its log lines with that one call's request id and caller.
            task = asyncio.create_task(self._flush(), name="group-commit", context=contextvars.Context())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)

    async def _flush(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
            # The batch's log lines name the batch (it serves many calls, so no one request id).
            structlog.contextvars.bind_contextvars(batch_id=uuid.uuid4().hex[:16], batch_size=len(batch))
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            ops = [op for op, _ in batch]
            try:
                outcomes = await self._apply_batch(ops)
            except Exception as exc:  # noqa: BLE001 - fall back to one op per transaction
                if len(ops) == 1:
                    outcomes = [exc]
                else:
                    log.warning("group_commit_fallback", size=len(ops), error=type(exc).__name__)
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
        except Exception as exc:  # noqa: BLE001 - this op's own failure, for its own caller
            return exc

    async def drain(self) -> None:
        """Wait until every submitted operation has its outcome (shutdown)."""
        while self._flushers:
            await asyncio.gather(*list(self._flushers), return_exceptions=True)
