"""Property tests: random operation sequences (retries included) against an in-memory model,
and random requests that must never crash the server (INTERNAL/UNKNOWN).

Hypothesis drives synchronous code; it runs in a worker thread and submits each gRPC call and
database check to the test's event loop, where the real server lives.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar

import grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.client import error_reason
from tests.support.rpc import on_loop
from tests.wallet.conftest import COINS, DIAMONDS, POINTS, Client, check_invariants

T = TypeVar("T")
USERS = ("a", "b", "c")
CURRENCIES = (POINTS, COINS)
run_ids = itertools.count()

op_strategy = st.one_of(
    st.tuples(st.just("credit"), st.sampled_from(USERS), st.sampled_from(CURRENCIES), st.integers(1, 50)),
    st.tuples(st.just("debit"), st.sampled_from(USERS), st.sampled_from(CURRENCIES), st.integers(1, 50)),
    st.tuples(st.just("reserve"), st.sampled_from(USERS), st.sampled_from(CURRENCIES), st.integers(1, 50)),
    st.tuples(st.just("commit"), st.integers(0, 5), st.integers(0, 50)),
    st.tuples(st.just("release"), st.integers(0, 5)),
    st.tuples(st.just("gift"), st.sampled_from(USERS), st.sampled_from(USERS), st.integers(2, 40)),
    st.tuples(st.just("expire"), st.integers(1, 120)),
    st.tuples(st.just("retry"), st.integers(0, 30)),
)


@dataclass
class Model:
    balances: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # [available, held]
    holds: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] = field(default_factory=dict)  # request_id -> first successful reply

    def acc(self, user: str, currency: int) -> list[int]:
        return self.balances.setdefault((user, currency), [0, 0])


async def test_random_sequences_keep_the_ledger_consistent(wallet: Client) -> None:
    loop = asyncio.get_running_loop()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return on_loop(loop, coro)

    async def attempt(method: str, caller: str, request: Any) -> tuple[str, Any]:
        try:
            return "ok", await wallet.call(method, caller)(request)
        except grpc.aio.AioRpcError as exc:
            return error_reason(exc), None

    @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.lists(op_strategy, min_size=1, max_size=12))
    @example(  # one rich sequence always runs, so every kind of step is exercised
        [
            ("reserve", "a", POINTS, 30), ("reserve", "a", POINTS, 40), ("commit", 0, 10), ("retry", 2),
            ("reserve", "b", COINS, 20), ("release", 2), ("commit", 2, 0), ("debit", "c", POINTS, 10),
            ("debit", "c", POINTS, 61),
            ("gift", "b", "c", 25), ("reserve", "c", POINTS, 5), ("expire", 61), ("commit", 3, 0),
        ]
    )
    def scenario(ops: list[tuple[Any, ...]]) -> None:
        prefix = f"p{next(run_ids)}"
        model = Model()
        history: list[tuple[str, str, Any, Any]] = []  # method, caller, request, apply-to-model
        for user in USERS:  # start funded, so holds and gifts happen in most examples
            for currency in CURRENCIES:
                run(wallet.fund(prefix + user, 60, currency))
                model.acc(user, currency)[0] = 60
        stats["examples"] += 1
        for step, op in enumerate(ops):
            rid = f"{prefix}-{step}"
            kind = op[0]
            if kind == "retry":
                if not history:
                    continue
                method, caller, request, effect = history[op[1] % len(history)]
            elif kind == "expire":
                wallet.clock.advance(op[1])
                run(wallet.started.wallet.holds.sweep_expired_holds())
                for h in model.holds:
                    if h["state"] == "active" and wallet.clock.now() >= h["expire"]:
                        stats["expired"] += 1
                        h["state"] = "expired"
                        a = model.acc(h["user"], h["currency"])
                        a[0] += h["amount"]
                        a[1] -= h["amount"]
                check(model, prefix)
                continue
            else:
                method, caller, request, effect = build(kind, op, rid, prefix, model)
                if method == "":
                    continue
                history.append((method, caller, request, effect))
            status, reply = run(attempt(method, caller, request))
            if request.request_id in model.done:
                assert status == "ok" and reply == model.done[request.request_id], (status, request)
            else:
                expected = effect(model, reply, dry_run=True)
                assert status == expected, (kind, request, status, expected)
                if status == "ok":
                    stats[method] += 1
                    effect(model, reply, dry_run=False)
                    model.done[request.request_id] = reply
            check(model, prefix)

    def check(model: Model, prefix: str) -> None:
        run(check_invariants(wallet.engine))
        for (user, currency), (available, held) in model.balances.items():
            assert run(wallet.balance(f"{prefix}{user}", currency)) == (available, held), (user, currency)
        for h in model.holds:
            got = run(wallet.call("GetHold")(pb.GetHoldRequest(hold_id=h["id"]))).hold
            assert got.state == {"active": 1, "committed": 2, "released": 3, "expired": 4}[h["state"]]

    stats: Counter[str] = Counter()
    await asyncio.to_thread(scenario)
    # The generator does reach every kind of step (a weak generator would prove little).
    assert all(stats[k] for k in ("CommitHold", "ReleaseHold", "SendGift", "Debit", "expired")), stats


def build(kind: str, op: tuple[Any, ...], rid: str, prefix: str, model: Model) -> tuple[str, str, Any, Any]:
    """The request for a generated op and the function that predicts and applies its effect."""
    if kind == "credit":
        _, user, currency, amount = op

        def credit(m: Model, reply: Any, dry_run: bool) -> str:
            if not dry_run:
                m.acc(user, currency)[0] += amount
            return "ok"

        caller = "payments" if currency == COINS else "earning"
        request = pb.CreditRequest(
            request_id=rid, user_id=prefix + user, currency=currency, amount=amount, reference=f"pay-{rid}"
        )
        return "Credit", caller, request, credit
    if kind in ("debit", "reserve"):
        _, user, currency, amount = op

        def spend(m: Model, reply: Any, dry_run: bool) -> str:
            a = m.acc(user, currency)
            if a[0] < amount:
                return "INSUFFICIENT_FUNDS"
            if not dry_run:
                a[0] -= amount
                if kind == "reserve":
                    a[1] += amount
                    m.holds.append(
                        {"id": reply.hold.hold_id, "user": user, "currency": currency, "amount": amount,
                         "state": "active", "expire": reply.hold.expire_time.ToDatetime(tzinfo=UTC)}
                    )
            return "ok"

        if kind == "debit":
            debit = pb.DebitRequest(request_id=rid, user_id=prefix + user, currency=currency, amount=amount)
            return "Debit", "redemption", debit, spend
        reserve = pb.ReserveRequest(
            request_id=rid, user_id=prefix + user, currency=currency, amount=amount, ttl_seconds=60
        )
        return "Reserve", "redemption", reserve, spend
    if kind in ("commit", "release"):
        if not model.holds:
            return "", "", None, None
        hold = model.holds[op[1] % len(model.holds)]
        amount = op[2] if kind == "commit" else 0

        def resolve(m: Model, reply: Any, dry_run: bool) -> str:
            if hold["state"] != "active":
                return {
                    "committed": "HOLD_ALREADY_COMMITTED",
                    "released": "HOLD_ALREADY_RELEASED",
                    "expired": "HOLD_EXPIRED",
                }[hold["state"]]
            if kind == "commit" and amount > hold["amount"]:
                return "AMOUNT_EXCEEDS_HOLD"
            if not dry_run:
                a = m.acc(hold["user"], hold["currency"])
                debit = (amount or hold["amount"]) if kind == "commit" else 0
                a[1] -= hold["amount"]
                a[0] += hold["amount"] - debit
                hold["state"] = "committed" if kind == "commit" else "released"
            return "ok"

        if kind == "commit":
            commit = pb.CommitHoldRequest(request_id=rid, hold_id=hold["id"], amount=amount)
            return "CommitHold", "redemption", commit, resolve
        return "ReleaseHold", "redemption", pb.ReleaseHoldRequest(request_id=rid, hold_id=hold["id"]), resolve
    _, sender, creator, coins = op
    if sender == creator:
        return "", "", None, None

    def gift(m: Model, reply: Any, dry_run: bool) -> str:
        a = m.acc(sender, COINS)
        if a[0] < coins:
            return "INSUFFICIENT_FUNDS"
        if not dry_run:
            a[0] -= coins
            m.acc(creator, DIAMONDS)[0] += coins // 2
        return "ok"

    sent = pb.SendGiftRequest(request_id=rid, sender_id=prefix + sender, creator_id=prefix + creator, coins=coins)
    return "SendGift", "app", sent, gift


# --- fuzz: no input makes the server fail with INTERNAL or UNKNOWN ----------------------------

text_st = st.text(max_size=140)
int_st = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-3, 60))
enum_st = st.integers(-5, 8)
int32_st = st.integers(-(2**31), 2**31 - 1)
REQUESTS = {
    "GetBalance": st.builds(pb.GetBalanceRequest, user_id=text_st, currency=enum_st),
    "Credit": st.builds(
        pb.CreditRequest,
        request_id=text_st, user_id=text_st, currency=enum_st, amount=int_st, reason=text_st, reference=text_st,
    ),
    "CreditBatch": st.builds(
        pb.CreditBatchRequest,
        entries=st.lists(
            st.builds(pb.CreditBatchEntry, request_id=text_st, user_id=text_st, currency=enum_st, amount=int_st),
            max_size=5,
        ),
    ),
    "Debit": st.builds(
        pb.DebitRequest, request_id=text_st, user_id=text_st, currency=enum_st, amount=int_st, reason=text_st
    ),
    "Reserve": st.builds(
        pb.ReserveRequest, request_id=text_st, user_id=text_st, currency=enum_st, amount=int_st, ttl_seconds=int_st
    ),
    "CommitHold": st.builds(pb.CommitHoldRequest, request_id=text_st, hold_id=text_st, amount=int_st, reason=text_st),
    "ReleaseHold": st.builds(pb.ReleaseHoldRequest, request_id=text_st, hold_id=text_st),
    "GetHold": st.builds(pb.GetHoldRequest, hold_id=text_st),
    "ListTransactions": st.builds(
        pb.ListTransactionsRequest, user_id=text_st, currency=enum_st, page_size=int32_st, page_token=text_st
    ),
    "SendGift": st.builds(
        pb.SendGiftRequest, request_id=text_st, sender_id=text_st, creator_id=text_st, coins=int_st, gift_id=text_st
    ),
    "ListGifts": st.builds(
        pb.ListGiftsRequest, user_id=text_st, role=enum_st, page_size=int32_st, page_token=text_st
    ),
    "RequestPayout": st.builds(pb.RequestPayoutRequest, request_id=text_st, creator_id=text_st, diamonds=int_st),
    "CompletePayout": st.builds(
        pb.CompletePayoutRequest,
        request_id=text_st, payout_id=text_st, success=st.booleans(), failure_reason=text_st,
    ),
}


async def test_random_requests_never_crash_the_server(wallet: Client) -> None:
    loop = asyncio.get_running_loop()

    async def call(method: str, caller: str, request: Any) -> None:
        try:
            await wallet.call(method, caller)(request)
        except grpc.aio.AioRpcError as exc:
            failed_inside = exc.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
            assert not failed_inside, (method, request, exc.details())
            assert error_reason(exc), (method, request)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(sorted(REQUESTS)).flatmap(lambda m: st.tuples(st.just(m), REQUESTS[m])),
        st.sampled_from(["admin", "app", "earning", "redemption", "payments"]),
    )
    def fuzz(case: tuple[str, Any], caller: str) -> None:
        method, request = case
        on_loop(loop, call(method, caller, request))

    await asyncio.to_thread(fuzz)
