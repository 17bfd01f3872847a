"""Holds: reserve, commit (full/partial), release, expiry, exactly-once resolution."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.client import error_reason
from tests.wallet.conftest import COINS, POINTS, Client

OK = grpc.StatusCode
FP = OK.FAILED_PRECONDITION


async def reserve(wallet: Client, rid: str, user: str, amount: int, ttl: int = 0, currency: int = POINTS) -> pb.Hold:
    reply: pb.ReserveResponse = await wallet.call("Reserve", "redemption")(
        pb.ReserveRequest(
            request_id=rid,
            user_id=user,
            currency=currency,  # type: ignore[arg-type]
            amount=amount,
            ttl_seconds=ttl,
            reference="red-1",
        )
    )
    return reply.hold


async def test_reserve_fails_at_once_when_short(wallet: Client) -> None:
    await wallet.fund("h1", 10)
    await reserve(wallet, "r-h1-a", "h1", 8)
    assert await wallet.balance("h1") == (2, 8)
    await wallet.expect_error(reserve(wallet, "r-h1-b", "h1", 3), FP, "INSUFFICIENT_FUNDS")
    await wallet.expect_error(
        wallet.call("Reserve", "app")(pb.ReserveRequest(request_id="r-h1-c", user_id="h1", currency=POINTS, amount=1)),
        OK.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
    )


async def test_commit_full_partial_and_too_much(wallet: Client) -> None:
    await wallet.fund("h2", 100, COINS)
    commit = wallet.call("CommitHold", "redemption")
    full = await reserve(wallet, "r-h2-a", "h2", 30, currency=COINS)
    reply = await commit(pb.CommitHoldRequest(request_id="c-h2-a", hold_id=full.hold_id, reason="redemption"))
    assert (reply.hold.state, reply.hold.committed_amount) == (pb.HOLD_STATE_COMMITTED, 30)
    postings = {(p.account, p.amount) for p in reply.transaction.postings}
    assert postings == {("user:h2", -30), ("system:coin_redemption", 30)}
    assert reply.transaction.kind == pb.TRANSACTION_KIND_HOLD_COMMIT
    assert await wallet.balance("h2", COINS) == (70, 0)
    part = await reserve(wallet, "r-h2-b", "h2", 50, currency=COINS)
    await wallet.expect_error(
        commit(pb.CommitHoldRequest(request_id="c-h2-x", hold_id=part.hold_id, amount=51)),
        OK.INVALID_ARGUMENT,
        "AMOUNT_EXCEEDS_HOLD",
    )
    reply = await commit(pb.CommitHoldRequest(request_id="c-h2-b", hold_id=part.hold_id, amount=20))
    assert reply.hold.committed_amount == 20 and reply.balance.available == 50 and reply.balance.held == 0
    assert await wallet.balance("h2", COINS) == (50, 0)


async def test_each_hold_resolves_exactly_once(wallet: Client) -> None:
    await wallet.fund("h3", 100)
    commit = wallet.call("CommitHold", "redemption")
    release = wallet.call("ReleaseHold", "redemption")
    a = await reserve(wallet, "r-h3-a", "h3", 10)
    first = await commit(pb.CommitHoldRequest(request_id="c-h3-a", hold_id=a.hold_id))
    assert await commit(pb.CommitHoldRequest(request_id="c-h3-a", hold_id=a.hold_id)) == first
    again = commit(pb.CommitHoldRequest(request_id="c-h3-a2", hold_id=a.hold_id))
    await wallet.expect_error(again, FP, "HOLD_ALREADY_COMMITTED")
    late_release = release(pb.ReleaseHoldRequest(request_id="l-h3-a", hold_id=a.hold_id))
    await wallet.expect_error(late_release, FP, "HOLD_ALREADY_COMMITTED")
    await wallet.expect_error(
        commit(pb.CommitHoldRequest(request_id="c-h3-a", hold_id=a.hold_id, amount=3)),
        OK.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    )
    b = await reserve(wallet, "r-h3-b", "h3", 10)
    released = await release(pb.ReleaseHoldRequest(request_id="l-h3-b", hold_id=b.hold_id))
    assert released.hold.state == pb.HOLD_STATE_RELEASED and released.hold.HasField("resolve_time")
    assert await release(pb.ReleaseHoldRequest(request_id="l-h3-b", hold_id=b.hold_id)) == released
    again = release(pb.ReleaseHoldRequest(request_id="l-h3-b2", hold_id=b.hold_id))
    await wallet.expect_error(again, FP, "HOLD_ALREADY_RELEASED")
    late_commit = commit(pb.CommitHoldRequest(request_id="c-h3-b", hold_id=b.hold_id))
    await wallet.expect_error(late_commit, FP, "HOLD_ALREADY_RELEASED")
    missing = commit(pb.CommitHoldRequest(request_id="c-h3-z", hold_id="hold_missing"))
    await wallet.expect_error(missing, OK.NOT_FOUND, "HOLD_NOT_FOUND")
    assert await wallet.balance("h3") == (90, 0)


async def test_ttl_default_maximum_and_expiry(wallet: Client) -> None:
    await wallet.fund("h4", 100)
    settings = wallet.started.settings
    h = await reserve(wallet, "r-h4-a", "h4", 10)
    assert h.expire_time.ToDatetime(tzinfo=wallet.clock.now().tzinfo) == wallet.clock.now() + timedelta(
        seconds=settings.hold_default_ttl_seconds
    )
    await wallet.expect_error(
        reserve(wallet, "r-h4-b", "h4", 1, ttl=settings.hold_max_ttl_seconds + 1), OK.INVALID_ARGUMENT, "INVALID_TTL"
    )
    short = await reserve(wallet, "r-h4-c", "h4", 20, ttl=5)
    wallet.clock.advance(5)
    # Expired but not yet swept: it can never be committed.
    await wallet.expect_error(
        wallet.call("CommitHold", "redemption")(pb.CommitHoldRequest(request_id="c-h4-c", hold_id=short.hold_id)),
        FP,
        "HOLD_EXPIRED",
    )
    assert await wallet.balance("h4") == (70, 30)
    swept = await wallet.started.wallet.holds.sweep_expired_holds()
    assert swept >= 1
    got = (await wallet.call("GetHold", "redemption")(pb.GetHoldRequest(hold_id=short.hold_id))).hold
    assert got.state == pb.HOLD_STATE_EXPIRED
    assert await wallet.balance("h4") == (90, 10)  # the default-TTL hold is still active
    await wallet.expect_error(
        wallet.call("ReleaseHold", "redemption")(pb.ReleaseHoldRequest(request_id="l-h4-c", hold_id=short.hold_id)),
        FP,
        "HOLD_EXPIRED",
    )


async def test_commit_release_and_expiry_race_to_one_outcome(wallet: Client) -> None:
    await wallet.fund("h5", 10_000)
    commit = wallet.call("CommitHold", "redemption")
    release = wallet.call("ReleaseHold", "redemption")
    for round_ in range(15):
        hold = await reserve(wallet, f"r-h5-{round_}", "h5", 100, ttl=10)
        wallet.clock.advance(10 if round_ % 3 == 0 else 0)  # a third of the rounds race an expired hold

        async def attempt(coro: object) -> str:
            try:
                await coro  # type: ignore[misc]
                return "ok"
            except grpc.aio.AioRpcError as exc:
                return error_reason(exc)

        outcomes = await asyncio.gather(
            *(
                attempt(commit(pb.CommitHoldRequest(request_id=f"c-h5-{round_}-{i}", hold_id=hold.hold_id)))
                for i in range(3)
            ),
            *(
                attempt(release(pb.ReleaseHoldRequest(request_id=f"l-h5-{round_}-{i}", hold_id=hold.hold_id)))
                for i in range(3)
            ),
            wallet.started.wallet.holds.sweep_expired_holds(),
        )
        calls, swept = outcomes[:6], outcomes[6]
        final = (await wallet.call("GetHold")(pb.GetHoldRequest(hold_id=hold.hold_id))).hold
        winners = calls.count("ok") + (1 if final.state == pb.HOLD_STATE_EXPIRED else 0)
        assert winners == 1, (calls, swept, final.state)
        assert final.state != pb.HOLD_STATE_ACTIVE
        if final.state == pb.HOLD_STATE_COMMITTED:
            assert calls[:3].count("ok") == 1
    assert (await wallet.balance("h5"))[1] == 0
