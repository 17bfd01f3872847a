"""Quotes of one limited item share their stock reads: a read held open by a gate (the race forced),
the callers that arrive meanwhile answered by one read that starts after it, failures and
cancellation."""

from __future__ import annotations

import asyncio

import pytest

from catalog.use_cases.shared_reads import SharedReads
from tests.support.wait import eventually


class GatedReads:
    """A read that counts itself and waits for its gate; answers the number of reads begun so far."""

    def __init__(self) -> None:
        self.begun = 0
        self.gates: list[asyncio.Event] = []
        self.fail_next = False

    async def read(self, key: str) -> tuple[str, int]:
        self.begun += 1
        number = self.begun
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database away")
        return key, number

    async def started(self, count: int) -> None:
        async def begun() -> bool:
            return self.begun >= count

        await eventually(begun, what=f"read {count} to begin")


async def test_callers_arriving_during_a_read_share_the_next_one() -> None:
    reads = GatedReads()
    shared = SharedReads(reads.read)
    first = asyncio.create_task(shared.get("item"))
    await reads.started(1)
    later = [asyncio.create_task(shared.get("item")) for _ in range(5)]
    other = asyncio.create_task(shared.get("other"))  # another key is not held up by this one
    await reads.started(2)
    reads.gates[1].set()
    assert await other == ("other", 2)
    assert reads.begun == 2  # the five later callers wait for the read that begins after the first
    reads.gates[0].set()
    assert await first == ("item", 1)
    await reads.started(3)
    reads.gates[2].set()
    assert [await task for task in later] == [("item", 3)] * 5  # one read, begun after they asked
    assert reads.begun == 3
    # Nothing running: the next caller starts a read at once.
    again = asyncio.create_task(shared.get("item"))
    await reads.started(4)
    reads.gates[3].set()
    assert await again == ("item", 4)


async def test_a_failed_read_fails_its_callers_only() -> None:
    reads = GatedReads()
    shared = SharedReads(reads.read)
    first = asyncio.create_task(shared.get("item"))
    await reads.started(1)
    reads.fail_next = True
    reads.gates[0].set()
    with pytest.raises(ConnectionError):
        await first
    after = asyncio.create_task(shared.get("item"))
    await reads.started(2)
    reads.gates[1].set()
    assert await after == ("item", 2)


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    reads = GatedReads()
    shared = SharedReads(reads.read)
    leaving = asyncio.create_task(shared.get("item"))
    staying = asyncio.create_task(shared.get("item"))
    await reads.started(1)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    reads.gates[0].set()
    assert await staying == ("item", 1)
