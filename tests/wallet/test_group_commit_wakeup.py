"""The wallet's ledger path relies on the group committer never stranding a queued operation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from points_platform.group_commit import GroupCommitter


async def test_op_submitted_as_the_last_flusher_finishes_is_still_applied() -> None:
    # A caller that queues in the loop iteration where the only flusher has just finished (its
    # task done, its done-callback not yet run) must get a flusher, not wait forever.
    late: list[asyncio.Future[int]] = []

    async def apply(ops: Sequence[int]) -> list[int | BaseException]:
        if ops == [1]:
            late.append(asyncio.ensure_future(committer.submit(2)))
        return [op * 10 for op in ops]

    committer: GroupCommitter[int, int] = GroupCommitter(apply, concurrency=1)
    assert await committer.submit(1) == 10
    assert await asyncio.wait_for(late[0], 5) == 20
