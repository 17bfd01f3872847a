"""The group committer alone: batching, per-op outcomes, fallback when a batch fails."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

import pytest
import structlog

from points_platform.group_commit import GroupCommitter


async def test_concurrent_submissions_share_batches_and_get_their_own_results() -> None:
    seen: list[int] = []
    all_submitted = asyncio.Event()  # the first batch holds the flusher until every op is queued

    async def apply(ops: Sequence[int]) -> list[int | BaseException]:
        seen.append(len(ops))
        await all_submitted.wait()
        return [op * 2 if op % 5 else ValueError(op) for op in ops]

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_batch=16, concurrency=1)

    async def submit(i: int) -> int:
        if i == 100:  # the last one: queued in this same step, before the flusher can resume
            all_submitted.set()
        return await committer.submit(i)

    results = await asyncio.gather(*(submit(i) for i in range(1, 101)), return_exceptions=True)
    for i, result in enumerate(results, start=1):
        if i % 5:
            assert result == i * 2
        else:
            assert isinstance(result, ValueError) and result.args == (i,)
    assert max(seen) == 16 and len(seen) < 100


async def test_a_failing_batch_is_reapplied_one_by_one() -> None:
    calls: list[list[str]] = []

    async def apply(ops: Sequence[str]) -> list[str | BaseException]:
        calls.append(list(ops))
        if "poison" in ops:
            raise RuntimeError("boom")
        return [op.upper() for op in ops]

    committer: GroupCommitter[str, str] = GroupCommitter(apply, max_batch=10, concurrency=1)
    tasks = [asyncio.ensure_future(committer.submit(op)) for op in ("a", "poison", "b")]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == "A" and done[2] == "B"
    assert isinstance(done[1], RuntimeError)
    assert ["a", "poison", "b"] in calls and ["a"] in calls and ["b"] in calls
    await committer.drain()


async def test_max_batch_is_respected() -> None:
    sizes: list[int] = []

    async def apply(ops: Sequence[int]) -> list[int | BaseException]:
        sizes.append(len(ops))
        return list(ops)

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_batch=3, concurrency=2)
    assert await asyncio.gather(*(committer.submit(i) for i in range(20))) == list(range(20))
    assert max(sizes) <= 3
    with pytest.raises(ZeroDivisionError):
        committer2: GroupCommitter[int, int] = GroupCommitter(lambda ops: _raise(), max_batch=3)
        await committer2.submit(1)


async def _raise() -> list[int]:
    raise ZeroDivisionError


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


async def test_a_batch_runs_under_no_callers_request_context() -> None:
    """The flusher must not inherit the first submitter's context (its logs would name that call)."""
    seen: list[str] = []
    batch_ids: list[str] = []

    async def apply(ops: Sequence[int]) -> list[int | BaseException]:
        seen.append(REQUEST_ID.get())
        batch_ids.append(structlog.contextvars.get_contextvars()["batch_id"])  # its log lines name the batch
        return list(ops)

    committer: GroupCommitter[int, int] = GroupCommitter(apply, max_batch=4, concurrency=1)

    async def call(i: int) -> int:
        REQUEST_ID.set(f"call-{i}")
        return await committer.submit(i)

    assert await asyncio.gather(*(call(i) for i in range(8))) == list(range(8))
    assert seen and set(seen) == {""}
    assert len(set(batch_ids)) == len(batch_ids) > 1
