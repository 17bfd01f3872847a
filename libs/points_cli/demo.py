"""`points demo`: a newcomer's story against a running `points up --demo` (seeded suite).

A user earns points from watching and a sponsored challenge, redeems a raffle ticket, a
cosmetic and a discount code, uses the code at checkout (as the fulfilment backend) and is
refused when trying it again, buys coins and sends a creator a coin gift; support then suspends
the user (a redemption is refused) and reinstates them (it succeeds); balances, history, both
sides' gift histories and entitlements are printed after each act. Last, what other backends
heard: the story's domain events from NATS JetStream (a durable pull consumer per service stream,
docs/events.md), or a note when none arrived. Each run uses fresh user ids, so it can be repeated.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from points.common.v1.common_pb2 import CURRENCY_COINS, CURRENCY_POINTS, Currency
from points.earning.v1 import earning_pb2, earning_pb2_grpc
from points.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_cli.event_feed import describe, story_events
from points_cli.targets import CallerContext, SuiteTargets
from points_platform.client import acting_for, error_reason

COSMETIC_PRICE = 500  # seeded "golden-frame"
RAFFLE_PRICE = 100  # seeded "spring-raffle"
DISCOUNT_PRICE = 2000  # seeded "ad-free-discount" (single use, valid 30 days)


def seeded_item_id(slug: str) -> str:
    """The catalog derives item ids from the seed's fixed request ids (see docs/catalog.md)."""
    return "item-" + hashlib.sha256(f"seed-catalog-item-{slug}".encode()).hexdigest()[:20]


def _ts(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def _name(currency: Currency.ValueType) -> str:
    return Currency.Name(currency).removeprefix("CURRENCY_")


class Demo:
    def __init__(self, ctx: CallerContext, run: str) -> None:
        self.ctx = ctx
        self.wallet = wallet_pb2_grpc.WalletServiceStub(ctx.channel("wallet"))
        self.earning = earning_pb2_grpc.EarningServiceStub(ctx.channel("earning"))
        self.redemption = redemption_pb2_grpc.RedemptionServiceStub(ctx.channel("redemption"))
        self.user = f"demo-user-{run}"
        self.creator = f"demo-creator-{run}"
        self.run = run

    def app_for(self, user: str) -> tuple[tuple[str, str], ...]:
        """The app backend's metadata for a call acting for `user` (user-scoped reads)."""
        return acting_for(self.ctx.metadata("app"), user)

    async def balances(self, user: str) -> None:
        reply = await self.wallet.GetBalance(wallet_pb2.GetBalanceRequest(user_id=user),
                                             metadata=self.app_for(user), timeout=10)
        line = ", ".join(f"{_name(b.currency)} {b.available} (+{b.held} held)" for b in reply.balances)
        print(f"  balance of {user}: {line}")

    async def history(self, user: str) -> None:
        reply = await self.wallet.ListTransactions(wallet_pb2.ListTransactionsRequest(user_id=user, page_size=20),
                                                   metadata=self.app_for(user), timeout=10)
        print(f"  history of {user} (newest first):")
        for e in reply.entries:
            print(f"    {e.amount:+6d} {_name(e.currency):<8} {e.reason:<14} ref={e.reference[:36]:<36} "
                  f"after={e.balance_after}")

    async def gifts(self, user: str, role: wallet_pb2.GiftRole.ValueType) -> None:
        reply = await self.wallet.ListGifts(wallet_pb2.ListGiftsRequest(user_id=user, role=role, page_size=20),
                                            metadata=self.app_for(user), timeout=10)
        sent = role == wallet_pb2.GIFT_ROLE_SENDER
        print(f"  gifts {'sent' if sent else 'received'} by {user} (newest first):")
        for g in reply.gifts:
            other = f"to {g.creator_id}" if sent else f"from {g.sender_id}"
            print(f"    {g.gift_id or '(no gift id)':<24} {g.coins} coins -> {g.diamonds} diamonds {other}")

    async def entitlements(self) -> None:
        reply = await self.redemption.ListEntitlements(redemption_pb2.ListEntitlementsRequest(user_id=self.user),
                                                       metadata=self.app_for(self.user), timeout=10)
        print(f"  entitlements of {self.user}:")
        for e in reply.entitlements:
            kind = redemption_pb2.EntitlementKind.Name(e.kind).removeprefix("ENTITLEMENT_KIND_")
            what = e.cosmetic_id or e.raffle_id or e.event_id or e.discount_code or f"{e.gift_id} -> {e.recipient_id}"
            state = redemption_pb2.EntitlementState.Name(e.state).removeprefix("ENTITLEMENT_STATE_")
            print(f"    {kind:<14} {what:<28} {state}")

    async def earn(self) -> None:
        app = self.ctx.metadata("app")
        watched_from = datetime.now(UTC)
        challenges = await self.earning.ListChallenges(earning_pb2.ListChallengesRequest(page_size=100),
                                                       metadata=app, timeout=10)
        challenge = next((c for c in challenges.challenges if c.name == "Summer Sprint"), None)
        if challenge is not None:
            joined = await self.earning.JoinChallenge(earning_pb2.JoinChallengeRequest(
                request_id=f"demo-join-{self.run}", challenge_id=challenge.challenge_id, user_id=self.user),
                metadata=self.app_for(self.user), timeout=10)
            # A challenge pays only for activity after the join: the videos are watched from the
            # server's join time on (this machine's clock may run behind it).
            watched_from = joined.participation.join_time.ToDatetime(tzinfo=UTC)
            print(f"1. {self.user} joins the sponsored challenge '{challenge.name}' ({challenge.sponsor}): "
                  f"early-join bonus of {joined.early_join_bonus_awarded} points, then watches videos at "
                  f"x{challenge.multiplier_bps / 10_000:g} on watch points")
        for n, minutes in enumerate((10, 25, 40)):
            event = earning_pb2.ActivityEvent(
                event_id=f"demo-watch-{self.run}-{n}", user_id=self.user, type=earning_pb2.ACTIVITY_TYPE_WATCH_TIME,
                occurred_at=_ts(watched_from + timedelta(seconds=n + 1)), region="US",
                device_id=f"demo-device-{self.run}",
                watch_seconds=minutes * 60, target_id=f"video-{n}")
            reply = await self.earning.RecordActivity(earning_pb2.RecordActivityRequest(event=event),
                                                      metadata=app, timeout=10)
            rules = ", ".join(f"{earning_pb2.RuleKind.Name(r.rule).removeprefix('RULE_KIND_')} {r.points:+d}"
                              for r in reply.result.breakdown)
            print(f"   watched {minutes} min -> {reply.result.points_awarded} points ({rules})")
        await self.balances(self.user)

    async def top_up_if_short(self, needed: int) -> None:
        reply = await self.wallet.GetBalance(wallet_pb2.GetBalanceRequest(user_id=self.user, currency=CURRENCY_POINTS),
                                             metadata=self.app_for(self.user), timeout=10)
        short = needed - reply.balances[0].available
        if short > 0:
            # Daily caps keep one day's watching below the catalog prices; an admin welcome bonus covers it.
            await self.wallet.Credit(wallet_pb2.CreditRequest(
                request_id=f"demo-bonus-{self.run}", user_id=self.user, currency=CURRENCY_POINTS, amount=short,
                reason="welcome_bonus", reference=f"demo-{self.run}"), metadata=self.ctx.metadata("admin"), timeout=10)
            print(f"   (admin welcome bonus of {short} points: daily caps limit one session's earnings)")

    async def redeem(self, slug: str, recipient: str = "", attempt: str = "") -> redemption_pb2.Redemption:
        reply = await self.redemption.Redeem(redemption_pb2.RedeemRequest(
            request_id=f"demo-redeem-{slug}-{self.run}{attempt}", user_id=self.user, item_id=seeded_item_id(slug),
            quantity=1, region="US", recipient_id=recipient), metadata=self.app_for(self.user), timeout=15)
        r = reply.redemption
        while r.state == redemption_pb2.REDEMPTION_STATE_PENDING:
            await asyncio.sleep(0.2)
            r = (await self.redemption.GetRedemption(redemption_pb2.GetRedemptionRequest(
                redemption_id=r.redemption_id), metadata=self.app_for(self.user), timeout=10)).redemption
        state = redemption_pb2.RedemptionState.Name(r.state).removeprefix("REDEMPTION_STATE_")
        steps = " -> ".join(redemption_pb2.SagaStepName.Name(s.name).removeprefix("SAGA_STEP_NAME_").lower()
                            for s in r.steps if s.outcome == redemption_pb2.STEP_OUTCOME_SUCCEEDED)
        print(f"   redeem {slug}: {state} {r.cancel_reason} for {r.price.amount} {_name(r.price.currency)}")
        print(f"     saga: {steps}")
        return r

    async def use_code(self, code: str, attempt: str) -> None:
        """The premium-features backend (caller `fulfilment`) applies the code to an order."""
        try:
            reply = await self.redemption.ConsumeEntitlement(redemption_pb2.ConsumeEntitlementRequest(
                request_id=f"demo-use-{attempt}-{self.run}", discount_code=code, reference=f"demo-order-{attempt}"),
                metadata=self.ctx.metadata("fulfilment"), timeout=10)
        except grpc.aio.AioRpcError as exc:
            print(f"   {attempt} use of code {code}: refused {exc.code().name} {error_reason(exc)}")
            return
        e = reply.entitlement
        state = redemption_pb2.EntitlementState.Name(e.state).removeprefix("ENTITLEMENT_STATE_")
        print(f"   {attempt} use of code {code}: applied to {reply.use.reference} by {reply.use.caller}, "
              f"now {state} (use {e.use_count} of {e.max_uses}, expires {e.expire_time.ToDatetime():%Y-%m-%d})")

    async def suspension(self) -> None:
        """Support suspends the user, a redemption is refused, support reinstates them, it succeeds."""
        admin = self.ctx.metadata("admin")
        ticket = f"SUP-{self.run}"
        await self.wallet.SuspendUser(wallet_pb2.SuspendUserRequest(
            request_id=f"demo-suspend-{self.run}", user_id=self.user, reason="fake engagement (demo)", ticket=ticket,
            operator_id="demo-support"), metadata=admin, timeout=10)
        print(f"   support suspends {self.user} (ticket {ticket})")
        try:
            await self.redeem("spring-raffle", attempt="-suspended")
        except grpc.aio.AioRpcError as exc:
            print(f"   redeem spring-raffle: refused {exc.code().name} {error_reason(exc)}")
        await self.balances(self.user)
        await self.wallet.ReinstateUser(wallet_pb2.ReinstateUserRequest(
            request_id=f"demo-reinstate-{self.run}", user_id=self.user, reason="appeal accepted (demo)", ticket=ticket,
            operator_id="demo-support"), metadata=admin, timeout=10)
        status = await self.wallet.GetUserStatus(wallet_pb2.GetUserStatusRequest(user_id=self.user), metadata=admin,
                                                 timeout=10)
        print(f"   support reinstates {self.user}: "
              f"{wallet_pb2.UserState.Name(status.status.state).removeprefix('USER_STATE_')}, "
              f"{len(status.history)} changes on record")
        await self.redeem("spring-raffle", attempt="-reinstated")


async def print_heard_events(demo: Demo, nats_url: str, since: datetime, idle_seconds: float) -> None:
    """The story's events as a consumer of the feed receives them; none is not an error (NATS
    away, or services that do not publish yet)."""
    print(f"\n6. what other backends heard: the story's events on NATS JetStream ({nats_url or 'no NATS URL'})")
    events = (
        await story_events(nats_url, {demo.user, demo.creator}, since, f"points-demo-{demo.run}",
                           idle_seconds=idle_seconds)
        if nats_url else None
    )  # fmt: skip
    if events is None:
        print("   NATS does not answer: no events to show")
    elif not events:
        print(f"   no events arrived within {idle_seconds:g} s (only services whose outbox is wired publish; "
              "docs/events.md)")
    for event in events or ():
        print(f"   {describe(event)}")


async def run_demo(
    state_dir: Path, ports: dict[str, int], nats_url: str = "", events_idle_seconds: float = 2.0
) -> None:
    """The story, printed; needs `points up --demo` (seeded catalog and challenge) running."""
    ctx = CallerContext(SuiteTargets.from_state_dir(state_dir, ports=ports))
    started = datetime.now(UTC)
    demo = Demo(ctx, started.strftime("%Y%m%d%H%M%S"))
    try:
        print(f"Points demo: {demo.user} and creator {demo.creator}\n")
        await demo.earn()
        print("\n2. redeem a raffle ticket and a cosmetic with points")
        # A second ticket in the suspension act.
        await demo.top_up_if_short(COSMETIC_PRICE + 2 * RAFFLE_PRICE + DISCOUNT_PRICE)
        await demo.redeem("spring-raffle")
        await demo.redeem("golden-frame")
        await demo.balances(demo.user)
        print("\n2b. redeem a discount code, use it at checkout, and try it again")
        discount = await demo.redeem("ad-free-discount")
        code = (await demo.redemption.GetEntitlement(redemption_pb2.GetEntitlementRequest(
            entitlement_id=discount.entitlement_ids[0]), metadata=demo.app_for(demo.user), timeout=10)
        ).entitlement.discount_code
        await demo.use_code(code, "first")
        await demo.use_code(code, "second")
        print("\n3. buy coins (payments) and send the creator a coin gift: coins -> diamonds at the gift rate")
        await demo.wallet.Credit(wallet_pb2.CreditRequest(
            request_id=f"demo-coins-{demo.run}", user_id=demo.user, currency=CURRENCY_COINS, amount=100,
            reason="coin_purchase", reference=f"demo-payment-{demo.run}"), metadata=ctx.metadata("payments"),
            timeout=10)
        await demo.redeem("rose-gift", recipient=demo.creator)
        await demo.balances(demo.user)
        await demo.balances(demo.creator)
        print("\n4. suspended for fake engagement: redeeming is refused until support reinstates the user")
        await demo.suspension()
        print("\n5. where it all went")
        await demo.history(demo.user)
        await demo.history(demo.creator)
        await demo.gifts(demo.user, wallet_pb2.GIFT_ROLE_SENDER)
        await demo.gifts(demo.creator, wallet_pb2.GIFT_ROLE_CREATOR)
        await demo.entitlements()
        await print_heard_events(demo, nats_url, started, events_idle_seconds)
    finally:
        await ctx.close()
