"""Concurrent reads of one key share a statement, and each still sees the database as of after it asked.

A caller that finds no read of its key running starts one at once. Callers that arrive while one is
running wait for the next read, which starts when the running one ends and answers all of them:
so every answer comes from a read that began after its caller asked (as exact as a read of its own),
and under load a key costs one statement per round trip instead of one per caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedReads(Generic[K, V]):
    def __init__(self, read: Callable[[K], Awaitable[V]]) -> None:
        self._read = read
        self._next: dict[K, asyncio.Future[V]] = {}  # callers waiting for the next read of a key
        self._running: set[K] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def get(self, key: K) -> V:
        waiting = self._next.get(key)
        if waiting is None:
            waiting = asyncio.get_running_loop().create_future()
            # Nobody may be left to look at a failure (every caller cancelled): mark it seen.
            waiting.add_done_callback(_seen)
            self._next[key] = waiting
            if key not in self._running:
                self._running.add(key)
                task = asyncio.get_running_loop().create_task(self._reads(key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        # A cancelled caller leaves the read to the others.
        return await asyncio.shield(waiting)

    async def _reads(self, key: K) -> None:
        try:
            while (answering := self._next.pop(key, None)) is not None:
                try:
                    value = await self._read(key)
                except Exception as error:  # noqa: BLE001 - every caller of this read gets it (e.g. UNAVAILABLE)
                    answering.set_exception(error)
                    continue
                except BaseException:
                    answering.cancel()
                    raise
                answering.set_result(value)
        finally:
            self._running.discard(key)
            # Cancelled (the loop closing): the callers still waiting are told so.
            stranded = self._next.pop(key, None)
            if stranded is not None and not stranded.done():
                stranded.cancel()


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
