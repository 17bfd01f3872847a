"""The wallet's gRPC servicer and its call policy: per RPC, validate the request, map it to a
command, run the use case and map its answer."""

from __future__ import annotations

from typing import Any

import grpc

from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow, current_caller, current_user
from points_platform.errors import DomainError
from points_platform.pagination import decode_before, encode_before, page_size
from points_platform.server import ServiceSpec
from points_platform.validation import require_id
from wallet import replies
from wallet import use_cases as uc
from wallet.api import mapping, validation
from wallet.domain import Currency, UserStatusAction
from wallet.use_cases.results import LedgerResult

FULL_NAME = replies.SERVICE

# Who may call what (docs/architecture.md, Policy); the per-currency rules live in the domain.
POLICY: Policy = {
    "GetBalance": ALL_CALLERS,
    "ListTransactions": ALL_CALLERS,
    "GetHold": allow("redemption", "admin"),  # holds are redemption's; a user reads balances and history
    "Credit": allow("earning", "payments", "redemption", "admin"),
    "CreditBatch": allow("earning", "admin"),
    "Debit": allow("redemption", "admin"),
    # Only redemption reserves, commits, releases (and refunds) holds (docs/architecture.md, Policy).
    "Reserve": allow("redemption"),
    "CommitHold": allow("redemption"),
    "ReleaseHold": allow("redemption"),
    "RefundHold": allow("redemption"),
    "SendGift": allow("app", "redemption", "admin"),
    "ListGifts": allow("app", "admin"),  # a user's (or, for admin, anyone's) gift history
    "RequestPayout": allow("app", "admin"),
    "CompletePayout": allow("payments", "admin"),
    # A user's standing is support's: operators suspend, reinstate and forfeit.
    "SuspendUser": allow("admin"),
    "ReinstateUser": allow("admin"),
    "GetUserStatus": allow("admin"),
    "ForfeitPoints": allow("admin"),
}

# One user's data: an `app` call names that user (platform auth.USER_HEADER, docs/architecture.md, Policy); the
# request field that must be that user. A gift is sent by the user the app acts for.
USER_SCOPED = {
    "GetBalance": "user_id", "ListTransactions": "user_id", "SendGift": "sender_id", "RequestPayout": "creator_id",
    "ListGifts": "user_id",
}

Ctx = grpc.aio.ServicerContext
_EVERY_CURRENCY = tuple(Currency)


class WalletApi(wallet_pb2_grpc.WalletServiceServicer):
    def __init__(self, wallet: uc.Wallet) -> None:
        self._wallet = wallet

    async def GetBalance(
        self, request: wallet_pb2.GetBalanceRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.GetBalanceResponse:
        require_id("user_id", request.user_id)
        wanted = validation.any_currency(int(request.currency))
        currencies = _EVERY_CURRENCY if wanted is None else (wanted,)
        balances = await self._wallet.history.get_balance(request.user_id, currencies)
        return wallet_pb2.GetBalanceResponse(balances=[replies.balance(b) for b in balances])

    async def Credit(self, request: wallet_pb2.CreditRequest, context: Ctx[Any, Any]) -> wallet_pb2.CreditResponse:
        command = mapping.credit(request)
        validation.movement(command)
        return replies.credit_reply(await self._wallet.ledger.credit(command, current_caller.get()))

    async def CreditBatch(
        self, request: wallet_pb2.CreditBatchRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.CreditBatchResponse:
        validation.batch_size(len(request.entries))
        # A bad entry fails alone: the valid ones go to the use case, the answers in request order.
        outcomes: list[LedgerResult | DomainError | None] = [None] * len(request.entries)
        valid: list[tuple[int, uc.Credit]] = []
        for i, entry in enumerate(request.entries):
            command = mapping.credit(entry)
            try:
                validation.movement(command)
            except DomainError as exc:
                outcomes[i] = exc
            else:
                valid.append((i, command))
        applied = await self._wallet.ledger.credit_batch([c for _, c in valid], current_caller.get())
        for (i, _), outcome in zip(valid, applied, strict=True):
            outcomes[i] = outcome
        results = []
        for entry, result in zip(request.entries, outcomes, strict=True):
            if isinstance(result, LedgerResult):
                results.append(wallet_pb2.CreditBatchResult(
                    request_id=entry.request_id, transaction=replies.transaction(result.transaction),
                    balance=replies.balance(result.balances[0]),
                ))
            else:
                assert result is not None
                results.append(wallet_pb2.CreditBatchResult(request_id=entry.request_id, error_reason=result.reason))
        return wallet_pb2.CreditBatchResponse(results=results)

    async def Debit(self, request: wallet_pb2.DebitRequest, context: Ctx[Any, Any]) -> wallet_pb2.DebitResponse:
        command = mapping.debit(request)
        validation.movement(command)
        return replies.debit_reply(await self._wallet.ledger.debit(command, current_caller.get()))

    async def Reserve(self, request: wallet_pb2.ReserveRequest, context: Ctx[Any, Any]) -> wallet_pb2.ReserveResponse:
        command = mapping.reserve(request)
        validation.reserve(command)
        return replies.reserve_reply(await self._wallet.holds.reserve(command, current_caller.get()))

    async def CommitHold(
        self, request: wallet_pb2.CommitHoldRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.CommitHoldResponse:
        command = mapping.commit_hold(request)
        validation.hold_amount(command)
        return replies.commit_reply(await self._wallet.holds.commit_hold(command, current_caller.get()))

    async def ReleaseHold(
        self, request: wallet_pb2.ReleaseHoldRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ReleaseHoldResponse:
        command = mapping.release_hold(request)
        validation.release(command)
        return replies.release_reply(await self._wallet.holds.release_hold(command, current_caller.get()))

    async def RefundHold(
        self, request: wallet_pb2.RefundHoldRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.RefundHoldResponse:
        command = mapping.refund_hold(request)
        validation.hold_amount(command)
        return replies.refund_reply(await self._wallet.holds.refund_hold(command, current_caller.get()))

    async def GetHold(self, request: wallet_pb2.GetHoldRequest, context: Ctx[Any, Any]) -> wallet_pb2.GetHoldResponse:
        require_id("hold_id", request.hold_id)
        return wallet_pb2.GetHoldResponse(hold=replies.hold(await self._wallet.holds.get_hold(request.hold_id)))

    async def ListTransactions(
        self, request: wallet_pb2.ListTransactionsRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ListTransactionsResponse:
        require_id("user_id", request.user_id)
        wanted = validation.any_currency(int(request.currency))
        limit = page_size(request.page_size)
        before = decode_before(request.page_token)
        entries, more = await self._wallet.history.list_transactions(request.user_id, wanted, limit, before)
        return wallet_pb2.ListTransactionsResponse(
            entries=[mapping.ledger_entry(e) for e in entries],
            next_page_token=encode_before(more) if more is not None else "",
        )

    async def SendGift(
        self, request: wallet_pb2.SendGiftRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.SendGiftResponse:
        command = mapping.send_gift(request)
        validation.gift(command)
        result = await self._wallet.ledger.send_gift(command, current_caller.get())
        reply = replies.gift_reply(result.ledger)
        if current_user.get():  # an app call acts for the sender: the creator's balance is not theirs
            reply.ClearField("creator_balance")
        return reply

    async def ListGifts(
        self, request: wallet_pb2.ListGiftsRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ListGiftsResponse:
        require_id("user_id", request.user_id)
        as_creator = validation.gift_role(int(request.role))
        limit = page_size(request.page_size)
        before = decode_before(request.page_token)
        found, more = await self._wallet.history.list_gifts(request.user_id, as_creator, limit, before)
        return wallet_pb2.ListGiftsResponse(
            gifts=[mapping.gift(g) for g in found],
            next_page_token=encode_before(more) if more is not None else "",
        )

    async def RequestPayout(
        self, request: wallet_pb2.RequestPayoutRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.RequestPayoutResponse:
        command = mapping.request_payout(request)
        validation.request_payout(command)
        return replies.request_payout_reply(await self._wallet.payouts.request_payout(command, current_caller.get()))

    async def CompletePayout(
        self, request: wallet_pb2.CompletePayoutRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.CompletePayoutResponse:
        command = mapping.complete_payout(request)
        validation.complete_payout(command)
        return replies.complete_payout_reply(
            await self._wallet.payouts.complete_payout(command, current_caller.get())
        )

    async def SuspendUser(
        self, request: wallet_pb2.SuspendUserRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.SuspendUserResponse:
        command = mapping.status_command(request)
        validation.status_change(command)
        view = await self._wallet.standing.change(command, UserStatusAction.SUSPENDED)
        return wallet_pb2.SuspendUserResponse(status=replies.user_status(view))

    async def ReinstateUser(
        self, request: wallet_pb2.ReinstateUserRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ReinstateUserResponse:
        command = mapping.status_command(request)
        validation.status_change(command)
        view = await self._wallet.standing.change(command, UserStatusAction.REINSTATED)
        return wallet_pb2.ReinstateUserResponse(status=replies.user_status(view))

    async def GetUserStatus(
        self, request: wallet_pb2.GetUserStatusRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.GetUserStatusResponse:
        require_id("user_id", request.user_id)
        view, history = await self._wallet.standing.status(request.user_id)
        return wallet_pb2.GetUserStatusResponse(
            status=replies.user_status(view), history=[replies.status_change(c) for c in history]
        )

    async def ForfeitPoints(
        self, request: wallet_pb2.ForfeitPointsRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ForfeitPointsResponse:
        command = mapping.forfeit(request)
        validation.forfeit(command)
        return replies.forfeit_reply(await self._wallet.standing.forfeit(command))


def service_spec(api: WalletApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        wallet_pb2_grpc.add_WalletServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.wallet", POLICY, register, USER_SCOPED)
