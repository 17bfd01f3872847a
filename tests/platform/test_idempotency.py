"""The one idempotency mechanism against a real PostgreSQL, with both storage choices: the shared
`idempotency` table, and replies folded into the rows the write creates (a test table here, as a
hot write such as a wallet credit would carry its key)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Column, LargeBinary, MetaData, Table, Text, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from points.redemption.v1 import redemption_pb2 as pb
from points_platform.clock import ManualClock
from points_platform.db import create_engine
from points_platform.errors import AlreadyExists, FailedPrecondition
from points_platform.idempotency import (
    FoldedStorage,
    Recorded,
    ReplyStorage,
    RequestKey,
    TableStorage,
    find_reply,
    fingerprint_from_digest,
    idempotency_table,
    idempotent,
    method_name,
    request_fingerprint,
)
from points_platform.unit_of_work import Transaction, Transactions
from points_platform.validation import fingerprint
from tests.conftest import NewDatabase

SERVICE = "points.redemption.v1.RedemptionService"
DRAW = method_name(SERVICE, "DrawRaffle")
PREPARE = method_name(SERVICE, "PrepareRaffleDraw")

metadata = MetaData()
keys = idempotency_table(metadata)
# The effect of a write whose reply sits in the shared table: one row per run of its work.
effects = Table("effects", metadata, Column("raffle_id", Text, nullable=False), Column("run", Text, nullable=False),
                Column("tag", Text, unique=True))
# A hot write that carries its own key: the reply is rebuilt from the row.
folded = Table(
    "folded_draws", metadata,
    Column("user_id", Text, nullable=False), Column("request_id", Text, nullable=False),
    Column("fingerprint", LargeBinary, nullable=False), Column("raffle_id", Text, nullable=False),
    Column("run", Text, nullable=False), Column("tag", Text, unique=True),
    UniqueConstraint("user_id", "request_id", name="folded_draws_key"),
)


async def _find_folded(tx: Transaction, key: RequestKey) -> Recorded | None:
    row = (await tx.connection.execute(select(folded).where(
        folded.c.user_id == key.user_id, folded.c.request_id == key.request_id))).one_or_none()
    if row is None:
        return None
    return Recorded(bytes(row.fingerprint), _reply(row.raffle_id, row.run))


def _reply(raffle_id: str, run: str) -> pb.DrawRaffleResponse:
    return pb.DrawRaffleResponse(draw=pb.RaffleDraw(raffle_id=raffle_id, seed_hash=run))


@dataclass
class Choice:
    """One storage choice and how its write lays down its effect."""

    storage: ReplyStorage
    effect_table: Table

    async def write(self, tx: Transaction, key: RequestKey, raffle_id: str, tag: str | None = None) -> str:
        run = uuid.uuid4().hex
        values: dict[str, object] = {"raffle_id": raffle_id, "run": run, "tag": tag}
        if self.effect_table is folded:
            values |= {"user_id": key.user_id, "request_id": key.request_id, "fingerprint": key.fingerprint}
        await tx.connection.execute(self.effect_table.insert().values(**values))
        return run


CHOICES = {"table": Choice(TableStorage(), effects), "folded": Choice(FoldedStorage(_find_folded), folded)}


@pytest.fixture(scope="module")
async def engine(new_database: NewDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await new_database("idem"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture(params=sorted(CHOICES))
def choice(request: pytest.FixtureRequest) -> Choice:
    return CHOICES[request.param]


async def _count(engine: AsyncEngine, t: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(t))).scalar_one())


async def _effects(engine: AsyncEngine, choice: Choice, raffle_id: str) -> list[str]:
    t = choice.effect_table
    async with engine.connect() as conn:
        return [r.run for r in await conn.execute(select(t.c.run).where(t.c.raffle_id == raffle_id))]


def _request(raffle_id: str, request_id: str | None = None) -> pb.DrawRaffleRequest:
    return pb.DrawRaffleRequest(request_id=request_id or uuid.uuid4().hex, raffle_id=raffle_id)


class Counted:
    """The work of a DrawRaffle: writes its effect, answers the raffle and the run's id."""

    def __init__(self, choice: Choice, key: RequestKey, raffle_id: str,
                 before_write: Callable[[], Awaitable[object]] | None = None) -> None:
        self.choice, self.key, self.raffle_id, self.before_write = choice, key, raffle_id, before_write
        self.calls = 0

    async def __call__(self, tx: Transaction) -> pb.DrawRaffleResponse:
        self.calls += 1
        if self.before_write is not None and self.calls == 1:
            await self.before_write()
        return _reply(self.raffle_id, await self.choice.write(tx, self.key, self.raffle_id))


async def test_the_same_request_again_replays_the_stored_reply(engine: AsyncEngine, choice: Choice) -> None:
    transactions = Transactions(engine)
    raffle = uuid.uuid4().hex
    request = _request(raffle)
    key = RequestKey.of(DRAW, request)
    work = Counted(choice, key, raffle)
    first = await idempotent(transactions, key, pb.DrawRaffleResponse, work, storage=choice.storage)
    again = await idempotent(transactions, RequestKey.of(DRAW, request), pb.DrawRaffleResponse, work,
                             storage=choice.storage)
    assert again == first and work.calls == 1
    assert await _effects(engine, choice, raffle) == [first.draw.seed_hash]
    assert await find_reply(transactions, key, pb.DrawRaffleResponse, storage=choice.storage) == first


async def test_the_same_key_with_another_request_is_refused(engine: AsyncEngine, choice: Choice) -> None:
    transactions = Transactions(engine)
    raffle = uuid.uuid4().hex
    request = _request(raffle)
    key = RequestKey.of(DRAW, request)
    await idempotent(transactions, key, pb.DrawRaffleResponse, Counted(choice, key, raffle), storage=choice.storage)
    other_body = RequestKey.of(DRAW, _request("other-raffle", request.request_id))
    other_method = RequestKey.of(PREPARE, pb.PrepareRaffleDrawRequest(request_id=request.request_id, raffle_id=raffle))
    for reused in (other_body, other_method):
        work = Counted(choice, reused, raffle)
        with pytest.raises(AlreadyExists) as caught:
            await idempotent(transactions, reused, pb.DrawRaffleResponse, work, storage=choice.storage)
        assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED" and work.calls == 0
        assert caught.value.metadata == {"request_id": request.request_id}
    assert len(await _effects(engine, choice, raffle)) == 1


async def test_the_key_is_per_user(engine: AsyncEngine, choice: Choice) -> None:
    transactions = Transactions(engine)
    raffle = uuid.uuid4().hex
    request = _request(raffle)
    for user in ("u1", "u2"):
        key = RequestKey.of(DRAW, request, user_id=user)
        await idempotent(transactions, key, pb.DrawRaffleResponse, Counted(choice, key, raffle),
                         storage=choice.storage)
    assert len(await _effects(engine, choice, raffle)) == 2


async def test_a_rolled_back_work_stores_no_key(engine: AsyncEngine, choice: Choice) -> None:
    transactions = Transactions(engine)
    raffle = uuid.uuid4().hex
    key = RequestKey.of(DRAW, _request(raffle))
    keys_before = await _count(engine, keys)

    async def refused(tx: Transaction) -> pb.DrawRaffleResponse:
        await choice.write(tx, key, raffle)
        raise FailedPrecondition("RAFFLE_CLOSED")

    with pytest.raises(FailedPrecondition):
        await idempotent(transactions, key, pb.DrawRaffleResponse, refused, storage=choice.storage)
    assert await _effects(engine, choice, raffle) == [] and await _count(engine, keys) == keys_before
    # The retry is judged afresh: it runs and is stored.
    retried = await idempotent(transactions, key, pb.DrawRaffleResponse, Counted(choice, key, raffle),
                               storage=choice.storage)
    assert await _effects(engine, choice, raffle) == [retried.draw.seed_hash]


async def test_concurrent_first_requests_have_one_effect(engine: AsyncEngine, choice: Choice) -> None:
    """Both racers looked the key up and found nothing before either wrote (a barrier): one
    commits, the other meets its key, is rolled back and replays the winner's reply."""
    transactions = Transactions(engine)
    raffle = uuid.uuid4().hex
    request = _request(raffle)
    both_looked = asyncio.Barrier(2)
    racers = [Counted(choice, RequestKey.of(DRAW, request), raffle, both_looked.wait) for _ in range(2)]
    replies = await asyncio.gather(*(
        idempotent(transactions, racer.key, pb.DrawRaffleResponse, racer, storage=choice.storage)
        for racer in racers))
    assert [racer.calls for racer in racers] == [1, 1]  # both ran their work...
    assert await _effects(engine, choice, raffle) == [replies[0].draw.seed_hash]  # ...one effect stayed
    assert replies[0] == replies[1]  # the loser answers the winner's reply


async def test_a_unique_violation_of_the_work_itself_is_not_a_replay(engine: AsyncEngine, choice: Choice) -> None:
    transactions = Transactions(engine)
    tag = uuid.uuid4().hex
    first_key = RequestKey.of(DRAW, _request("tagged"))

    async def tagged(tx: Transaction) -> pb.DrawRaffleResponse:
        return _reply("tagged", await choice.write(tx, first_key, "tagged", tag))

    await idempotent(transactions, first_key, pb.DrawRaffleResponse, tagged, storage=choice.storage)
    second_key = RequestKey.of(DRAW, _request("tagged"))

    async def same_tag(tx: Transaction) -> pb.DrawRaffleResponse:
        return _reply("tagged", await choice.write(tx, second_key, "tagged", tag))

    with pytest.raises(IntegrityError):
        await idempotent(transactions, second_key, pb.DrawRaffleResponse, same_tag, storage=choice.storage)


def test_a_digest_stored_before_the_module_gives_the_same_fingerprint() -> None:
    """Rows stored with `validation.fingerprint` (hex of the request digest) migrate exactly."""
    request = _request("r1", "k1")
    legacy = fingerprint(request)
    assert fingerprint_from_digest(DRAW, bytes.fromhex(legacy)) == request_fingerprint(DRAW, request)
    assert request_fingerprint(DRAW, request) != request_fingerprint(PREPARE, request)
    assert request_fingerprint(DRAW, request) == request_fingerprint(DRAW, _request("r1", "another key"))


async def test_the_table_takes_the_time_of_an_injected_clock(engine: AsyncEngine) -> None:
    clock = ManualClock()
    transactions = Transactions(engine)
    raffle = uuid.uuid4().hex
    key = RequestKey.of(DRAW, _request(raffle))
    choice = Choice(TableStorage(now=clock.now), effects)
    await idempotent(transactions, key, pb.DrawRaffleResponse, Counted(choice, key, raffle), storage=choice.storage)
    async with engine.connect() as conn:
        created = (await conn.execute(select(keys.c.created_time).where(keys.c.request_id == key.request_id))).scalar()
    assert created == clock.now()
