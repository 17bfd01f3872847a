"""gRPC transport of the wallet service: proto <-> use case mapping and the call policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow, current_caller, current_user
from points_platform.errors import DomainError
from points_platform.server import ServiceSpec
from wallet import use_cases as uc
from wallet.domain import UserStatusAction
from wallet.results import (
    BalanceView,
    HoldResult,
    HoldView,
    LedgerResult,
    PayoutView,
    TransactionView,
    UserStatusChangeView,
    UserStatusView,
)

FULL_NAME = "points.wallet.v1.WalletService"

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


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _balance(b: BalanceView) -> wallet_pb2.Balance:
    return wallet_pb2.Balance(user_id=b.user_id, currency=int(b.currency), available=b.available, held=b.held)  # type: ignore[arg-type]


def _transaction(t: TransactionView) -> wallet_pb2.Transaction:
    return wallet_pb2.Transaction(
        transaction_id=t.transaction_id,
        request_id=t.request_id,
        kind=int(t.kind),  # type: ignore[arg-type]
        postings=[
            wallet_pb2.Posting(account=p.account, user_id=p.user_id, currency=int(p.currency), amount=p.amount)  # type: ignore[arg-type]
            for p in t.postings
        ],
        create_time=_ts(t.create_time),
        reason=t.reason,
        reference=t.reference,
    )


def _hold(h: HoldView) -> wallet_pb2.Hold:
    return wallet_pb2.Hold(
        hold_id=h.hold_id,
        user_id=h.user_id,
        currency=int(h.currency),  # type: ignore[arg-type]
        amount=h.amount,
        committed_amount=h.committed_amount,
        state=int(h.state),  # type: ignore[arg-type]
        reference=h.reference,
        expire_time=_ts(h.expire_time),
        create_time=_ts(h.create_time),
        resolve_time=_ts(h.resolve_time),
        refunded_amount=h.refunded_amount,
    )


def _payout(p: PayoutView) -> wallet_pb2.Payout:
    return wallet_pb2.Payout(
        payout_id=p.payout_id,
        creator_id=p.creator_id,
        diamonds=p.diamonds,
        cash_value_minor=p.cash_value_minor,
        cash_currency=p.cash_currency,
        cash_minor_per_thousand_diamonds=p.cash_minor_per_thousand_diamonds,
        state=int(p.state),  # type: ignore[arg-type]
        hold_id=p.hold_id,
        create_time=_ts(p.create_time),
        complete_time=_ts(p.complete_time),
        failure_reason=p.failure_reason,
        transaction_id=p.transaction_id,
    )


def _status_change(c: UserStatusChangeView) -> wallet_pb2.UserStatusChange:
    return wallet_pb2.UserStatusChange(
        action=int(c.action),  # type: ignore[arg-type]
        operator_id=c.operator_id,
        reason=c.reason,
        ticket=c.ticket,
        create_time=_ts(c.create_time),
        request_id=c.request_id,
    )


def _user_status(v: UserStatusView) -> wallet_pb2.UserStatus:
    state = wallet_pb2.USER_STATE_SUSPENDED if v.suspended else wallet_pb2.USER_STATE_ACTIVE
    status = wallet_pb2.UserStatus(user_id=v.user_id, state=state)
    if v.last_change is not None:
        status.last_change.CopyFrom(_status_change(v.last_change))
    return status


def _status_command(r: wallet_pb2.SuspendUserRequest | wallet_pb2.ReinstateUserRequest) -> uc.ChangeUserStatus:
    return uc.ChangeUserStatus(r.request_id, r.user_id, r.reason, r.ticket, r.operator_id)


def _credit(r: wallet_pb2.CreditRequest | wallet_pb2.CreditBatchEntry) -> uc.Credit:
    return uc.Credit(r.request_id, r.user_id, int(r.currency), r.amount, r.reason, r.reference)


def _ledger_pair(result: LedgerResult) -> tuple[wallet_pb2.Transaction, wallet_pb2.Balance]:
    return _transaction(result.transaction), _balance(result.balances[0])


def _hold_reply(result: HoldResult) -> dict[str, object]:
    reply: dict[str, object] = {"hold": _hold(result.hold), "balance": _balance(result.balance)}
    if result.transaction is not None:
        reply["transaction"] = _transaction(result.transaction)
    return reply


class WalletApi(wallet_pb2_grpc.WalletServiceServicer):
    def __init__(self, wallet: uc.Wallet) -> None:
        self._wallet = wallet

    async def GetBalance(

        self, request: wallet_pb2.GetBalanceRequest, context: Ctx[Any, Any]

    ) -> wallet_pb2.GetBalanceResponse:
        balances = await self._wallet.get_balance(request.user_id, int(request.currency))
        return wallet_pb2.GetBalanceResponse(balances=[_balance(b) for b in balances])

    async def Credit(self, request: wallet_pb2.CreditRequest, context: Ctx[Any, Any]) -> wallet_pb2.CreditResponse:
        txn, balance = _ledger_pair(await self._wallet.credit(_credit(request), current_caller.get()))
        return wallet_pb2.CreditResponse(transaction=txn, balance=balance)

    async def CreditBatch(
        self, request: wallet_pb2.CreditBatchRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.CreditBatchResponse:
        outcomes = await self._wallet.credit_batch([_credit(e) for e in request.entries], current_caller.get())
        results = []
        for entry, outcome in zip(request.entries, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                results.append(wallet_pb2.CreditBatchResult(request_id=entry.request_id, error_reason=outcome.reason))
            else:
                txn, balance = _ledger_pair(outcome)
                results.append(
                    wallet_pb2.CreditBatchResult(request_id=entry.request_id, transaction=txn, balance=balance)
                )
        return wallet_pb2.CreditBatchResponse(results=results)

    async def Debit(self, request: wallet_pb2.DebitRequest, context: Ctx[Any, Any]) -> wallet_pb2.DebitResponse:
        command = uc.Debit(
            request.request_id,
            request.user_id,
            int(request.currency),
            request.amount,
            request.reason,
            request.reference,
        )
        txn, balance = _ledger_pair(await self._wallet.debit(command, current_caller.get()))
        return wallet_pb2.DebitResponse(transaction=txn, balance=balance)

    async def Reserve(self, request: wallet_pb2.ReserveRequest, context: Ctx[Any, Any]) -> wallet_pb2.ReserveResponse:
        command = uc.Reserve(
            request.request_id, request.user_id, int(request.currency), request.amount, request.ttl_seconds,
            request.reference,
        )
        result = await self._wallet.reserve(command, current_caller.get())
        return wallet_pb2.ReserveResponse(hold=_hold(result.hold), balance=_balance(result.balance))

    async def CommitHold(

        self, request: wallet_pb2.CommitHoldRequest, context: Ctx[Any, Any]

    ) -> wallet_pb2.CommitHoldResponse:
        command = uc.CommitHold(request.request_id, request.hold_id, request.amount, request.reason)
        return wallet_pb2.CommitHoldResponse(
            **_hold_reply(await self._wallet.commit_hold(command, current_caller.get()))  # type: ignore[arg-type]
        )

    async def ReleaseHold(
        self, request: wallet_pb2.ReleaseHoldRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ReleaseHoldResponse:
        command = uc.ReleaseHold(request.request_id, request.hold_id)
        result = await self._wallet.release_hold(command, current_caller.get())
        return wallet_pb2.ReleaseHoldResponse(hold=_hold(result.hold), balance=_balance(result.balance))

    async def RefundHold(
        self, request: wallet_pb2.RefundHoldRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.RefundHoldResponse:
        command = uc.RefundHold(request.request_id, request.hold_id, request.amount, request.reason)
        return wallet_pb2.RefundHoldResponse(
            **_hold_reply(await self._wallet.refund_hold(command, current_caller.get()))  # type: ignore[arg-type]
        )

    async def GetHold(self, request: wallet_pb2.GetHoldRequest, context: Ctx[Any, Any]) -> wallet_pb2.GetHoldResponse:
        return wallet_pb2.GetHoldResponse(hold=_hold(await self._wallet.get_hold(request.hold_id)))

    async def ListTransactions(
        self, request: wallet_pb2.ListTransactionsRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ListTransactionsResponse:
        entries, token = await self._wallet.list_transactions(
            request.user_id, int(request.currency), request.page_size, request.page_token
        )
        return wallet_pb2.ListTransactionsResponse(
            entries=[
                wallet_pb2.LedgerEntry(
                    transaction_id=e.transaction_id,
                    currency=int(e.currency),  # type: ignore[arg-type]
                    amount=e.amount,
                    reason=e.reason,
                    reference=e.reference,
                    create_time=_ts(e.create_time),
                    balance_after=e.balance_after,
                    kind=int(e.kind),  # type: ignore[arg-type]
                )
                for e in entries
            ],
            next_page_token=token,
        )

    async def SendGift(

        self, request: wallet_pb2.SendGiftRequest, context: Ctx[Any, Any]

    ) -> wallet_pb2.SendGiftResponse:
        command = uc.SendGift(request.request_id, request.sender_id, request.creator_id, request.coins, request.gift_id)
        result = await self._wallet.send_gift(command, current_caller.get())
        reply = wallet_pb2.SendGiftResponse(
            transaction=_transaction(result.ledger.transaction),
            diamonds_credited=result.diamonds_credited,
            sender_balance=_balance(result.sender_balance),
            gift_rate_bps=result.gift_rate_bps,
        )
        if not current_user.get():  # an app call acts for the sender: the creator's balance is not theirs
            reply.creator_balance.CopyFrom(_balance(result.creator_balance))
        return reply

    async def ListGifts(

        self, request: wallet_pb2.ListGiftsRequest, context: Ctx[Any, Any]

    ) -> wallet_pb2.ListGiftsResponse:
        found, token = await self._wallet.list_gifts(
            request.user_id, int(request.role), request.page_size, request.page_token
        )
        return wallet_pb2.ListGiftsResponse(
            gifts=[
                wallet_pb2.Gift(
                    transaction_id=g.transaction_id, gift_id=g.gift_id, sender_id=g.sender_id, creator_id=g.creator_id,
                    coins=g.coins, diamonds=g.diamonds, create_time=_ts(g.create_time),
                )
                for g in found
            ],
            next_page_token=token,
        )

    async def RequestPayout(
        self, request: wallet_pb2.RequestPayoutRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.RequestPayoutResponse:
        command = uc.RequestPayout(request.request_id, request.creator_id, request.diamonds)
        return wallet_pb2.RequestPayoutResponse(
            payout=_payout(await self._wallet.request_payout(command, current_caller.get()))
        )

    async def CompletePayout(
        self, request: wallet_pb2.CompletePayoutRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.CompletePayoutResponse:
        command = uc.CompletePayout(request.request_id, request.payout_id, request.success, request.failure_reason)
        return wallet_pb2.CompletePayoutResponse(
            payout=_payout(await self._wallet.complete_payout(command, current_caller.get()))
        )

    async def SuspendUser(
        self, request: wallet_pb2.SuspendUserRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.SuspendUserResponse:
        view = await self._wallet.standing.change(_status_command(request), UserStatusAction.SUSPENDED)
        return wallet_pb2.SuspendUserResponse(status=_user_status(view))

    async def ReinstateUser(
        self, request: wallet_pb2.ReinstateUserRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ReinstateUserResponse:
        view = await self._wallet.standing.change(_status_command(request), UserStatusAction.REINSTATED)
        return wallet_pb2.ReinstateUserResponse(status=_user_status(view))

    async def GetUserStatus(
        self, request: wallet_pb2.GetUserStatusRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.GetUserStatusResponse:
        view, history = await self._wallet.standing.status(request.user_id)
        return wallet_pb2.GetUserStatusResponse(status=_user_status(view), history=[_status_change(c) for c in history])

    async def ForfeitPoints(
        self, request: wallet_pb2.ForfeitPointsRequest, context: Ctx[Any, Any]
    ) -> wallet_pb2.ForfeitPointsResponse:
        command = uc.ForfeitPoints(
            request.request_id, request.user_id, request.amount, request.all, request.reason, request.ticket
        )
        txn, balance = _ledger_pair(await self._wallet.standing.forfeit(command))
        return wallet_pb2.ForfeitPointsResponse(transaction=txn, balance=balance, amount=-txn.postings[0].amount)


def service_spec(api: WalletApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        wallet_pb2_grpc.add_WalletServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.wallet", POLICY, register, USER_SCOPED)
