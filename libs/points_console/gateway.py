"""The console's only way to the services: gRPC calls as the `admin` caller, naming the operator."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import grpc
from google.protobuf import timestamp_pb2

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.common.v1 import common_pb2
from points.earning.v1 import earning_pb2, earning_pb2_grpc
from points.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_console.forms import Adjustment, CosmeticItemForm, Forfeiture, PreviewEvent, StandingChange
from points_platform.auth import OPERATOR_HEADER
from points_platform.client import bearer, error_info, open_channel

# A drawn raffle's tickets are fetched and the draw replayed in the page up to this many.
MAX_REPLAYED_TICKETS = 20_000


class ServiceRefusedError(Exception):
    """A service answered with an error; `message` is fit to show an operator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _refusal(error: grpc.RpcError) -> ServiceRefusedError:
    info = error_info(error)
    code = error.code().name if isinstance(error, grpc.aio.AioRpcError) else "ERROR"
    reason = info.reason if info is not None else code
    details = error.details() if isinstance(error, grpc.aio.AioRpcError) else ""
    return ServiceRefusedError(f"{reason}: {details}" if details else reason)


@dataclass(frozen=True)
class Targets:
    wallet: str
    earning: str
    catalog: str
    redemption: str


class Gateway:
    """Stubs over one channel per service; every call carries the admin token and the operator's name."""

    def __init__(self, targets: Targets, admin_token: str) -> None:
        self._token = admin_token
        self._channels = [
            open_channel(t) for t in (targets.wallet, targets.earning, targets.catalog, targets.redemption)
        ]
        self.wallet = wallet_pb2_grpc.WalletServiceStub(self._channels[0])
        self.earning = earning_pb2_grpc.EarningServiceStub(self._channels[1])
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self._channels[2])
        self.redemption = redemption_pb2_grpc.RedemptionServiceStub(self._channels[3])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    def _metadata(self, operator: str) -> tuple[tuple[str, str], ...]:
        return (*bearer(self._token), (OPERATOR_HEADER, operator))

    async def call(self, method, request, operator: str):  # type: ignore[no-untyped-def]
        """Call a stub method; a service error becomes ServiceRefusedError."""
        try:
            return await method(request, metadata=self._metadata(operator), timeout=10.0)
        except grpc.RpcError as error:
            raise _refusal(error) from error

    async def held_earnings(self, operator: str) -> list[earning_pb2.HeldEarning]:
        request = earning_pb2.ListHeldEarningsRequest(
            state=earning_pb2.HELD_EARNING_STATE_PENDING, page_size=100
        )
        response = await self.call(self.earning.ListHeldEarnings, request, operator)
        return list(response.held_earnings)

    async def resolve(self, operator: str, request_id: str, held_earning_id: str, approve: bool, note: str) -> None:
        # The operator's name is stored with the decision, in the review note.
        request = earning_pb2.ResolveHeldEarningRequest(
            request_id=request_id,
            held_earning_id=held_earning_id,
            approve=approve,
            note=f"[{operator}] {note}",
        )
        await self.call(self.earning.ResolveHeldEarning, request, operator)

    async def balances(self, operator: str, user_id: str) -> list[wallet_pb2.Balance]:
        response = await self.call(self.wallet.GetBalance, wallet_pb2.GetBalanceRequest(user_id=user_id), operator)
        return list(response.balances)

    async def ledger(self, operator: str, user_id: str, page_token: str) -> wallet_pb2.ListTransactionsResponse:
        request = wallet_pb2.ListTransactionsRequest(user_id=user_id, page_size=25, page_token=page_token)
        response: wallet_pb2.ListTransactionsResponse = await self.call(
            self.wallet.ListTransactions, request, operator
        )
        return response

    async def rules(self, operator: str) -> earning_pb2.Rules:
        response = await self.call(self.earning.GetRules, earning_pb2.GetRulesRequest(), operator)
        rules: earning_pb2.Rules = response.rules
        return rules

    async def save_rules(
        self, operator: str, request_id: str, rules: earning_pb2.Rules, expected_version: int
    ) -> earning_pb2.Rules:
        request = earning_pb2.UpdateRulesRequest(request_id=request_id, rules=rules, expected_version=expected_version)
        response = await self.call(self.earning.UpdateRules, request, operator)
        saved: earning_pb2.Rules = response.rules
        return saved

    async def preview_earning(
        self, operator: str, rules: earning_pb2.Rules, event: PreviewEvent
    ) -> earning_pb2.PreviewEarningResponse:
        """What the event would earn now under the current rules and under `rules`; writes nothing."""
        occurred_at = timestamp_pb2.Timestamp()
        occurred_at.GetCurrentTime()
        activity = earning_pb2.ActivityEvent(
            # A fresh id: the preview evaluates it as a new event.
            event_id=f"console-preview-{uuid.uuid4()}", user_id=event.user_id,
            type=earning_pb2.ActivityType.Value(f"ACTIVITY_TYPE_{event.activity}"), occurred_at=occurred_at,
            region=event.region, device_id=event.device_id, watch_seconds=event.watch_seconds,
            target_id=event.target_id, game_id=event.game_id, milestone_id=event.milestone_id,
            challenge_id=event.challenge_id,
        )
        request = earning_pb2.PreviewEarningRequest(rules=rules, event=activity)
        response: earning_pb2.PreviewEarningResponse = await self.call(self.earning.PreviewEarning, request, operator)
        return response

    async def earnings_today(self, operator: str, user_id: str) -> earning_pb2.GetDailySummaryResponse:
        request = earning_pb2.GetDailySummaryRequest(user_id=user_id)
        response: earning_pb2.GetDailySummaryResponse = await self.call(self.earning.GetDailySummary, request, operator)
        return response

    async def redemptions(self, operator: str, user_id: str) -> list[redemption_pb2.Redemption]:
        """The user's latest redemptions with their saga steps (the list omits steps; each is read whole)."""
        request = redemption_pb2.ListRedemptionsRequest(user_id=user_id, page_size=25)
        response = await self.call(self.redemption.ListRedemptions, request, operator)
        return list(await asyncio.gather(*(self.redemption_with_steps(operator, r.redemption_id)
                                           for r in response.redemptions)))

    async def redemption_with_steps(self, operator: str, redemption_id: str) -> redemption_pb2.Redemption:
        request = redemption_pb2.GetRedemptionRequest(redemption_id=redemption_id)
        response = await self.call(self.redemption.GetRedemption, request, operator)
        found: redemption_pb2.Redemption = response.redemption
        return found

    async def items(self, operator: str) -> list[catalog_pb2.Item]:
        response = await self.call(self.catalog.ListItems, catalog_pb2.ListItemsRequest(page_size=100), operator)
        return list(response.items)

    async def campaigns(self, operator: str) -> list[catalog_pb2.Campaign]:
        response = await self.call(
            self.catalog.ListCampaigns, catalog_pb2.ListCampaignsRequest(page_size=100), operator
        )
        return list(response.campaigns)

    async def end_campaign(self, operator: str, request_id: str, campaign_id: str) -> None:
        request = catalog_pb2.EndCampaignRequest(request_id=request_id, campaign_id=campaign_id)
        await self.call(self.catalog.EndCampaign, request, operator)

    async def create_item(self, operator: str, request_id: str, item: CosmeticItemForm) -> catalog_pb2.Item:
        request = catalog_pb2.CreateItemRequest(request_id=request_id, spec=_spec(item))
        response = await self.call(self.catalog.CreateItem, request, operator)
        created: catalog_pb2.Item = response.item
        return created

    async def update_item(
        self, operator: str, request_id: str, item_id: str, expected_version: int, item: CosmeticItemForm
    ) -> catalog_pb2.Item:
        request = catalog_pb2.UpdateItemRequest(
            request_id=request_id, item_id=item_id, expected_version=expected_version, spec=_spec(item)
        )
        response = await self.call(self.catalog.UpdateItem, request, operator)
        updated: catalog_pb2.Item = response.item
        return updated

    async def item(self, operator: str, item_id: str) -> catalog_pb2.Item:
        response = await self.call(self.catalog.GetItem, catalog_pb2.GetItemRequest(item_id=item_id), operator)
        found: catalog_pb2.Item = response.item
        return found

    async def quote(self, operator: str, item: catalog_pb2.Item) -> catalog_pb2.QuoteResponse:
        """What one unit costs a user who has bought none, in the item's first region."""
        request = catalog_pb2.QuoteRequest(
            item_id=item.item_id, user_id="console-preview", region=(list(item.regions) or ["US"])[0], quantity=1
        )
        response: catalog_pb2.QuoteResponse = await self.call(self.catalog.Quote, request, operator)
        return response

    # -- Sagas and raffles -----------------------------------------------------------------------

    async def all_redemptions(
        self, operator: str, states: list[redemption_pb2.RedemptionState.ValueType], max_age_seconds: int,
        page_token: str,
    ) -> redemption_pb2.ListAllRedemptionsResponse:
        request = redemption_pb2.ListAllRedemptionsRequest(
            states=states, max_age_seconds=max_age_seconds, page_size=50, page_token=page_token
        )
        response: redemption_pb2.ListAllRedemptionsResponse = await self.call(
            self.redemption.ListAllRedemptions, request, operator
        )
        return response

    async def raffle_draw(self, operator: str, raffle_id: str) -> redemption_pb2.RaffleDraw | None:
        """The raffle's draw record; None while no seed is committed (NOT_FOUND RAFFLE_NOT_PREPARED)."""
        request = redemption_pb2.GetRaffleDrawRequest(raffle_id=raffle_id)
        try:
            response = await self.redemption.GetRaffleDraw(request, metadata=self._metadata(operator), timeout=10.0)
        except grpc.RpcError as error:
            if isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _refusal(error) from error
        draw: redemption_pb2.RaffleDraw = response.draw
        return draw

    async def raffle_tickets(self, operator: str, raffle_id: str) -> list[str] | None:
        """Every ticket a drawn raffle drew from; None past MAX_REPLAYED_TICKETS (too many to replay in a page)."""
        tickets: list[str] = []
        token = ""
        while len(tickets) < MAX_REPLAYED_TICKETS:
            request = redemption_pb2.ListRaffleTicketsRequest(raffle_id=raffle_id, page_size=500, page_token=token)
            response = await self.call(self.redemption.ListRaffleTickets, request, operator)
            tickets += response.ticket_entitlement_ids
            token = response.next_page_token
            if not token:
                return tickets
        return None

    async def prepare_raffle(self, operator: str, request_id: str, raffle_id: str) -> None:
        request = redemption_pb2.PrepareRaffleDrawRequest(request_id=request_id, raffle_id=raffle_id)
        await self.call(self.redemption.PrepareRaffleDraw, request, operator)

    async def draw_raffle(self, operator: str, request_id: str, raffle_id: str) -> None:
        request = redemption_pb2.DrawRaffleRequest(request_id=request_id, raffle_id=raffle_id)
        await self.call(self.redemption.DrawRaffle, request, operator)

    # -- A user's standing -------------------------------------------------------------------------

    async def entitlements(self, operator: str, user_id: str) -> list[redemption_pb2.Entitlement]:
        request = redemption_pb2.ListEntitlementsRequest(user_id=user_id, page_size=50)
        response = await self.call(self.redemption.ListEntitlements, request, operator)
        return list(response.entitlements)

    async def gifts(self, operator: str, user_id: str, role: wallet_pb2.GiftRole.ValueType) -> list[wallet_pb2.Gift]:
        request = wallet_pb2.ListGiftsRequest(user_id=user_id, role=role, page_size=25)
        response = await self.call(self.wallet.ListGifts, request, operator)
        return list(response.gifts)

    async def user_status(self, operator: str, user_id: str) -> wallet_pb2.GetUserStatusResponse:
        request = wallet_pb2.GetUserStatusRequest(user_id=user_id)
        response: wallet_pb2.GetUserStatusResponse = await self.call(self.wallet.GetUserStatus, request, operator)
        return response

    async def adjust(self, operator: str, request_id: str, adjustment: Adjustment) -> None:
        """A POINTS credit or debit; the ticket is its reference, the reason names the operator."""
        fields = {
            "request_id": request_id, "user_id": adjustment.user_id, "currency": common_pb2.CURRENCY_POINTS,
            "amount": adjustment.amount, "reason": f"[{operator}] {adjustment.reason}", "reference": adjustment.ticket,
        }
        if adjustment.credit:
            await self.call(self.wallet.Credit, wallet_pb2.CreditRequest(**fields), operator)  # type: ignore[arg-type]
        else:
            await self.call(self.wallet.Debit, wallet_pb2.DebitRequest(**fields), operator)  # type: ignore[arg-type]

    async def set_suspended(self, operator: str, request_id: str, change: StandingChange, suspend: bool) -> None:
        if suspend:
            await self.call(self.wallet.SuspendUser, wallet_pb2.SuspendUserRequest(
                request_id=request_id, user_id=change.user_id, reason=change.reason, ticket=change.ticket,
                operator_id=operator), operator)
        else:
            await self.call(self.wallet.ReinstateUser, wallet_pb2.ReinstateUserRequest(
                request_id=request_id, user_id=change.user_id, reason=change.reason, ticket=change.ticket,
                operator_id=operator), operator)

    async def forfeit(self, operator: str, request_id: str, forfeiture: Forfeiture) -> None:
        request = wallet_pb2.ForfeitPointsRequest(
            request_id=request_id, user_id=forfeiture.user_id, amount=forfeiture.amount, all=forfeiture.everything,
            reason=forfeiture.reason, ticket=forfeiture.ticket,
        )
        await self.call(self.wallet.ForfeitPoints, request, operator)


def _spec(item: CosmeticItemForm) -> catalog_pb2.ItemSpec:
    return catalog_pb2.ItemSpec(
        kind=catalog_pb2.ITEM_KIND_COSMETIC,
        title=item.title,
        description=item.description,
        price=common_pb2.Price(currency=common_pb2.CURRENCY_POINTS, amount=item.price_points),
        regions=item.regions,
        limited_stock=item.stock_total > 0,
        stock_total=item.stock_total,
        cosmetic=catalog_pb2.CosmeticAttributes(cosmetic_id=item.cosmetic_id),
    )
