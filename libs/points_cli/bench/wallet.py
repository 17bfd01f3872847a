"""Wallet benchmark scenarios for `points bench wallet`.

credit_random: Credit to one of 10,000 users; credit_hot: every Credit to one account (the
livestream creator); credit_batch_100: CreditBatch of 100 credits to random users (events/s =
credits/s); reserve_commit: Reserve then CommitHold (two RPCs per call); get_balance.
The harness adds the Health/Check baseline on the same server.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from points.common.v1.common_pb2 import CURRENCY_COINS, CURRENCY_POINTS
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_cli.bench.harness import BenchContext, Scenario
from points_platform.client import acting_for

Call = Callable[[int], Awaitable[None]]
USERS = 10_000
SPENDERS = 64


def _request_id(ctx: BenchContext, kind: str, i: int) -> str:
    return f"bench-{ctx.run_id}-{kind}-{ctx.worker}-{i}"


async def build_credit_random(ctx: BenchContext) -> Call:
    stub = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
    md = ctx.metadata("earning")
    rng = random.Random(ctx.worker)

    async def call(i: int) -> None:
        await stub.Credit(
            wallet_pb2.CreditRequest(
                request_id=_request_id(ctx, "cr", i), user_id=f"bench-user-{rng.randrange(USERS)}",
                currency=CURRENCY_POINTS, amount=1, reason="bench",
            ),
            metadata=md,
        )

    return call


BATCH = 100


async def build_credit_batch(ctx: BenchContext) -> Call:
    """CreditBatch of 100 entries to random accounts (what earning sends when it flushes)."""
    stub = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
    md = ctx.metadata("earning")
    rng = random.Random(ctx.worker)

    async def call(i: int) -> None:
        entries = [
            wallet_pb2.CreditBatchEntry(
                request_id=_request_id(ctx, f"cb{i}", n), user_id=f"bench-user-{rng.randrange(USERS)}",
                currency=CURRENCY_POINTS, amount=1, reason="bench",
            )
            for n in range(BATCH)
        ]
        await stub.CreditBatch(wallet_pb2.CreditBatchRequest(entries=entries), metadata=md)

    return call


async def build_credit_hot(ctx: BenchContext) -> Call:
    stub = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
    md = ctx.metadata("payments")

    async def call(i: int) -> None:
        # Each call is its own payment: a payment reference is credited once per user and currency.
        request_id = _request_id(ctx, "ch", i)
        await stub.Credit(
            wallet_pb2.CreditRequest(
                request_id=request_id, user_id="bench-hot-creator", currency=CURRENCY_COINS,
                amount=1, reason="bench", reference=f"pay-{request_id}",
            ),
            metadata=md,
        )

    return call


async def setup_spenders(ctx: BenchContext) -> None:
    """Give the Reserve+Commit spenders a balance that no run exhausts."""
    stub = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
    md = ctx.metadata("admin")
    for n in range(SPENDERS):
        await stub.Credit(
            wallet_pb2.CreditRequest(
                request_id=f"bench-{ctx.run_id}-fund-{n}", user_id=f"bench-spender-{n}",
                currency=CURRENCY_POINTS, amount=10**12, reason="bench", reference="bench-setup",
            ),
            metadata=md,
        )


async def build_reserve_commit(ctx: BenchContext) -> Call:
    stub = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
    md = ctx.metadata("redemption")
    rng = random.Random(ctx.worker)

    async def call(i: int) -> None:
        held = await stub.Reserve(
            wallet_pb2.ReserveRequest(
                request_id=_request_id(ctx, "rs", i), user_id=f"bench-spender-{rng.randrange(SPENDERS)}",
                currency=CURRENCY_POINTS, amount=1, ttl_seconds=60,
            ),
            metadata=md,
        )
        await stub.CommitHold(
            wallet_pb2.CommitHoldRequest(request_id=_request_id(ctx, "cm", i), hold_id=held.hold.hold_id),
            metadata=md,
        )

    return call


async def build_get_balance(ctx: BenchContext) -> Call:
    stub = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
    # The app backend acting for each spender in turn (GetBalance is scoped to the user it acts for).
    mds = [acting_for(ctx.metadata("app"), f"bench-spender-{n}") for n in range(SPENDERS)]
    rng = random.Random(ctx.worker)

    async def call(i: int) -> None:
        n = rng.randrange(SPENDERS)
        await stub.GetBalance(wallet_pb2.GetBalanceRequest(user_id=f"bench-spender-{n}"), metadata=mds[n])

    return call


SCENARIOS = [
    Scenario(name="credit_random", target="wallet", build=build_credit_random),
    Scenario(name="credit_hot", target="wallet", build=build_credit_hot),
    Scenario(name="credit_batch_100", target="wallet", build=build_credit_batch, events_per_call=BATCH),
    Scenario(name="reserve_commit", target="wallet", build=build_reserve_commit, setup=setup_spenders),
    Scenario(name="get_balance", target="wallet", build=build_get_balance, setup=setup_spenders),
]
