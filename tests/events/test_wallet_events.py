"""The wallet's transaction_posted events through its own outbox and relay to a real nats-server:
one event per user a ledger transaction touches, for every effect (credits, debits, both sides of
a gift, payouts requested and completed, hold commits and refunds, forfeits and expiry), once per
change and never for a replay; nothing for a change that was refused or rolled back; one balance's
events in order, with strictly increasing versions and balances that follow the amounts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import text

from points.common.v1.common_pb2 import Currency
from points.events.v1 import envelope_pb2
from points.events.v1 import wallet_pb2 as ev
from points.wallet.v1 import wallet_pb2 as pb
from points_platform.clock import ManualClock
from points_platform.embedded_nats import EmbeddedNats
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS
from tests.support.nats import connect_client, drained_stream
from tests.wallet.conftest import COINS, DIAMONDS, POINTS, Client, check_invariants
from wallet.config import WalletSettings
from wallet.main import start

FAILED = grpc.StatusCode.FAILED_PRECONDITION


@dataclass(frozen=True)
class Seen:
    """One published event, as a consumer reads it."""

    user: str
    effect: str  # CREDIT, GIFT_SENT, ...
    currency: str  # POINTS, COINS, DIAMONDS
    amount: int
    balance_after: int
    version: int
    event: envelope_pb2.Event

    @property
    def posted(self) -> ev.TransactionPosted:
        return self.event.transaction_posted


@dataclass
class Feed:
    w: Client
    nc: NatsClient

    async def sql(self, statement: str, **params: Any) -> int:
        async with self.w.engine.connect() as conn:
            return int((await conn.execute(text(statement), params)).scalar_one())

    async def published(self) -> list[Seen]:
        """Every event the stream holds once the outbox is drained, in stream order."""
        stored = await drained_stream(self.w.engine, self.nc, "wallet")
        seen = []
        for m in stored:
            e = m.event
            assert (e.source_service, e.event_type, m.msg_id) == ("wallet", "transaction_posted", e.event_id)
            assert m.subject.startswith("points.wallet.transaction_posted.")
            p = e.transaction_posted
            currency = Currency.Name(p.currency).removeprefix("CURRENCY_")
            assert e.aggregate_id == f"{e.user_id}/{currency}"
            seen.append(Seen(e.user_id, ev.TransactionEffect.Name(p.effect).removeprefix("TRANSACTION_EFFECT_"),
                             currency, p.amount, p.balance_after, e.aggregate_version, e))
        return seen

    async def total(self, user: str, currency: int = POINTS) -> int:
        available, held = await self.w.balance(user, currency)
        return available + held


@pytest.fixture
async def feed(new_database: NewDatabase, nats_server: EmbeddedNats) -> AsyncIterator[Feed]:
    settings = WalletSettings(
        database_url=await new_database("wallet"), port=0, tokens_json=json.dumps(TOKENS), db_pool_size=20,
        nats_url=nats_server.url, points_expiry_days=30,
        outbox_keep_published_seconds=10**9,  # the expiry test moves the clock by a month: keep every row
    )
    clock = ManualClock()
    started = await start(settings, clock=clock, sweeper=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{started.port}")
    nc = await connect_client(nats_server)
    try:
        yield Feed(Client(channel, started, clock), nc)
        await check_invariants(started.engine)
    finally:
        await nc.close()
        await channel.close()
        await started.stop()


def check_chains(seen: list[Seen], opening: dict[tuple[str, str], int] | None = None) -> None:
    """Per balance (user and currency), in stream order: versions strictly increase, and each
    balance_after is the previous one plus the event's amount (from `opening`, else 0)."""
    last: dict[tuple[str, str], tuple[int, int]] = {}
    for s in seen:
        key = (s.user, s.currency)
        version, balance = last.get(key, (0, (opening or {}).get(key, 0)))
        assert s.version > version, (key, s.version, version)
        assert s.balance_after == balance + s.amount, (key, s)
        last[key] = (s.version, s.balance_after)


async def twice(call: Any, request: Any) -> Any:
    """The call, then its replay (same request id and fields): the same reply."""
    first = await call(request)
    assert await call(request) == first
    return first


async def test_every_effect_is_published_once_per_change_and_never_for_a_replay(feed: Feed) -> None:
    w = feed.w
    credit, debit = w.call("Credit", "earning"), w.call("Debit", "redemption")
    await twice(credit, pb.CreditRequest(request_id="c1", user_id="u", currency=POINTS, amount=100, reason="watch",
                                         reference="credit-1"))
    await twice(w.call("Credit"), pb.CreditRequest(request_id="adj", user_id="u", currency=POINTS, amount=7,
                                                   reason="adjustment", reference="SUP-9"))
    await twice(debit, pb.DebitRequest(request_id="d1", user_id="u", currency=POINTS, amount=30, reason="redeem"))
    await twice(w.call("Credit", "payments"), pb.CreditRequest(request_id="buy", user_id="fan", currency=COINS,
                                                               amount=50, reason="buy", reference="pay-1"))
    await twice(w.call("SendGift", "app"), pb.SendGiftRequest(request_id="g1", sender_id="fan", creator_id="star",
                                                              coins=40, gift_id="rose"))
    reserve, commit = w.call("Reserve", "redemption"), w.call("CommitHold", "redemption")
    hold = (await twice(reserve, pb.ReserveRequest(request_id="h1", user_id="u", currency=POINTS, amount=20,
                                                   reference="red-1"))).hold
    await twice(commit, pb.CommitHoldRequest(request_id="h1-c", hold_id=hold.hold_id, amount=15))
    await twice(w.call("RefundHold", "redemption"), pb.RefundHoldRequest(request_id="h1-r", hold_id=hold.hold_id,
                                                                         amount=5))
    payout = (await twice(w.call("RequestPayout", "app"), pb.RequestPayoutRequest(
        request_id="p1", creator_id="star", diamonds=12))).payout
    await twice(w.call("CompletePayout", "payments"), pb.CompletePayoutRequest(
        request_id="p1-done", payout_id=payout.payout_id, success=True))
    await twice(w.call("ForfeitPoints"), pb.ForfeitPointsRequest(request_id="f1", user_id="u", amount=2,
                                                                 reason="fraud", ticket="T-1"))
    w.clock.advance(31 * 86_400)  # u's three lots are due: what remains of them expires
    assert await w.started.wallet.expiry.expire_points() == 3
    assert await w.started.wallet.expiry.expire_points() == 0

    seen = await feed.published()
    # The stream keeps each user's order (their partition's); users' events interleave freely.
    assert [(s.effect, s.currency, s.amount) for s in seen if s.user == "u"] == [
        ("CREDIT", "POINTS", 100),
        ("CREDIT", "POINTS", 7),
        ("DEBIT", "POINTS", -30),
        ("HOLD_COMMITTED", "POINTS", -15),
        ("HOLD_REFUNDED", "POINTS", 5),
        ("EXPIRED", "POINTS", -2),  # the forfeit
        ("EXPIRED", "POINTS", -53),  # the first credit's lot, after the debit, commit and forfeit
        ("EXPIRED", "POINTS", -7),  # the adjustment's lot
        ("EXPIRED", "POINTS", -5),  # the refund's lot
    ]
    assert [(s.effect, s.currency, s.amount) for s in seen if s.user == "fan"] == [
        ("CREDIT", "COINS", 50), ("GIFT_SENT", "COINS", -40)]
    assert [(s.effect, s.currency, s.amount) for s in seen if s.user == "star"] == [
        ("GIFT_RECEIVED", "DIAMONDS", 20), ("PAYOUT_REQUESTED", "DIAMONDS", 0), ("PAYOUT_COMPLETED", "DIAMONDS", -12)]
    assert len(seen) == 14
    check_chains(seen)
    assert (await feed.total("u"), await feed.total("fan", COINS), await feed.total("star", DIAMONDS)) == (0, 10, 8)
    assert [s.balance_after for s in seen if s.user == "star"] == [20, 20, 8]
    by_effect = {s.effect: s.posted for s in seen}
    gift_sent, gift_received = by_effect["GIFT_SENT"], by_effect["GIFT_RECEIVED"]
    assert (gift_sent.counterparty_user_id, gift_received.counterparty_user_id) == ("star", "fan")
    assert gift_sent.transaction_id == gift_received.transaction_id != ""
    assert (gift_sent.reference, by_effect["DEBIT"].counterparty_user_id) == ("rose", "")
    assert (by_effect["HOLD_COMMITTED"].hold_id, by_effect["HOLD_COMMITTED"].held_change) == (hold.hold_id, -20)
    assert (by_effect["HOLD_REFUNDED"].hold_id, by_effect["HOLD_REFUNDED"].reference) == (hold.hold_id, "red-1")
    requested, completed = by_effect["PAYOUT_REQUESTED"], by_effect["PAYOUT_COMPLETED"]
    assert (requested.held_change, requested.reference, requested.transaction_id) == (12, payout.payout_id, "")
    assert (completed.held_change, completed.hold_id) == (-12, requested.hold_id)
    assert requested.hold_id == payout.hold_id
    assert sorted(s.posted.reference for s in seen if s.effect == "CREDIT") == ["SUP-9", "credit-1", "pay-1"]
    # Each event names the ledger transaction ListTransactions shows.
    async with w.engine.connect() as conn:
        posted = set((await conn.execute(text("SELECT transaction_id FROM transactions"))).scalars())
    assert all(s.posted.transaction_id in posted for s in seen if s.effect != "PAYOUT_REQUESTED")


async def test_refused_and_rolled_back_changes_publish_nothing(feed: Feed) -> None:
    w = feed.w
    await w.call("Credit", "payments")(pb.CreditRequest(request_id="buy", user_id="sus", currency=COINS, amount=30,
                                                        reason="buy", reference="pay-s"))
    await w.fund("poor", 10)
    await feed.published()  # the two fundings
    async with w.engine.connect() as conn:
        before = await conn.scalar(text("SELECT count(*) FROM outbox"))
    await w.expect_error(w.call("Debit", "redemption")(
        pb.DebitRequest(request_id="over", user_id="poor", currency=POINTS, amount=11)), FAILED, "INSUFFICIENT_FUNDS")
    await w.expect_error(w.call("Reserve", "redemption")(
        pb.ReserveRequest(request_id="over-h", user_id="poor", currency=POINTS, amount=11)), FAILED,
        "INSUFFICIENT_FUNDS")
    await w.call("SuspendUser")(pb.SuspendUserRequest(request_id="s", user_id="sus", reason="fake engagement",
                                                      ticket="SUP-1", operator_id="agent-7"))
    await w.expect_error(w.call("SendGift", "app")(
        pb.SendGiftRequest(request_id="g", sender_id="sus", creator_id="star", coins=10)), FAILED, "USER_SUSPENDED")
    await w.expect_error(w.call("Credit", "payments")(pb.CreditRequest(
        request_id="buy-again", user_id="sus", currency=COINS, amount=30, reason="buy", reference="pay-s")),
        grpc.StatusCode.ALREADY_EXISTS, "PAYMENT_ALREADY_CREDITED")
    # A batch that wrote its events and then failed in the same transaction (its lot insert refused
    # by a trigger): the events roll back with the ledger change.
    async with w.engine.begin() as conn:
        await conn.execute(text(
            "CREATE FUNCTION refuse_lot() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$"))
        await conn.execute(text(
            "CREATE TRIGGER refuse_lot BEFORE INSERT ON points_lots FOR EACH ROW "
            "WHEN (NEW.user_id = 'doomed') EXECUTE FUNCTION refuse_lot()"))
    with pytest.raises(grpc.aio.AioRpcError):
        await w.fund("doomed", 10)
    assert await w.balance("doomed") == (0, 0)
    await w.fund("poor", 1)  # a change that commits after them all
    seen = await feed.published()
    async with w.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox")) == before + 1
    assert sorted((s.user, s.effect, s.amount, s.balance_after) for s in seen) == [
        ("poor", "CREDIT", 1, 11), ("poor", "CREDIT", 10, 10), ("sus", "CREDIT", 30, 30)]


async def test_one_balance_arrives_in_order_under_concurrent_changes(feed: Feed) -> None:
    """Credits, debits and hold commits of one user at once, through the group-committed batches and
    the hold statement: the stream has them with strictly increasing versions and each balance the
    previous plus its amount, ending at the account's balance."""
    w = feed.w
    await w.fund("hot", 1_000)
    reserve, commit = w.call("Reserve", "redemption"), w.call("CommitHold", "redemption")
    holds = [(await reserve(pb.ReserveRequest(request_id=f"h{i}", user_id="hot", currency=POINTS, amount=10))).hold
             for i in range(10)]
    credit, debit = w.call("Credit", "earning"), w.call("Debit", "redemption")
    calls = [credit(pb.CreditRequest(request_id=f"c{i}", user_id="hot", currency=POINTS, amount=3 + i,
                                     reason="watch", reference=f"r{i}")) for i in range(30)]
    calls += [debit(pb.DebitRequest(request_id=f"d{i}", user_id="hot", currency=POINTS, amount=2 + i % 5))
              for i in range(30)]
    calls += [commit(pb.CommitHoldRequest(request_id=f"hc{i}", hold_id=h.hold_id, amount=5 + i % 3))
              for i, h in enumerate(holds)]
    await asyncio.gather(*calls)
    seen = [s for s in await feed.published() if s.user == "hot"]
    assert len(seen) == 1 + 30 + 30 + 10
    check_chains(seen)
    assert seen[-1].balance_after == await feed.total("hot")
    assert sorted(s.effect for s in seen).count("HOLD_COMMITTED") == 10


@pytest.mark.parametrize("version, balance", [(1, None), (1, 0), (127, 128), (300, 2**31), (2**63 - 1, 2**63 - 1)])
async def test_the_sql_tail_encodes_what_protobuf_parses(feed: Feed, version: int, balance: int | None) -> None:
    """The payload the statements finish in SQL parses as the event with its version and balance."""
    prefix = envelope_pb2.Event(event_id=str(uuid.uuid4()), event_type="transaction_posted", user_id="x",
                                transaction_posted=ev.TransactionPosted(transaction_id="t", amount=-4))
    async with feed.w.engine.connect() as conn:
        tail = await conn.scalar(text("SELECT wallet_event_tail(:v, :b)"), {"v": version, "b": balance})
    event = envelope_pb2.Event.FromString(prefix.SerializeToString() + bytes(tail))
    assert (event.aggregate_version, event.transaction_posted.balance_after) == (version, balance or 0)
    assert (event.user_id, event.transaction_posted.transaction_id, event.transaction_posted.amount) == ("x", "t", -4)
