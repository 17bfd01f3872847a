"""The wallet as the saga's `Wallet` port: balances, holds, gifts and refunds over gRPC."""

from __future__ import annotations

import grpc

from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from redemption.peers.calls import call, currency_value
from redemption.use_cases.ports import HoldInfo


def _hold(h: wallet_pb2.Hold) -> HoldInfo:
    return HoldInfo(h.hold_id, wallet_pb2.HoldState.Name(h.state).removeprefix("HOLD_STATE_"))


class WalletClient:
    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], timeout: float) -> None:
        self._stub = wallet_pb2_grpc.WalletServiceStub(channel)
        self._md = metadata
        self._timeout = timeout

    async def available(self, user_id: str, currency: str) -> int:
        reply = await call(self._stub.GetBalance(
            wallet_pb2.GetBalanceRequest(user_id=user_id, currency=currency_value(currency)),
            metadata=self._md, timeout=self._timeout))
        return sum(b.available for b in reply.balances)

    async def reserve(self, request_id: str, user_id: str, currency: str, amount: int, ttl_seconds: int,
                      reference: str) -> HoldInfo:
        reply = await call(self._stub.Reserve(
            wallet_pb2.ReserveRequest(request_id=request_id, user_id=user_id, currency=currency_value(currency),
                                      amount=amount, ttl_seconds=ttl_seconds, reference=reference),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def commit(self, request_id: str, hold_id: str, reason: str) -> HoldInfo:
        reply = await call(self._stub.CommitHold(
            wallet_pb2.CommitHoldRequest(request_id=request_id, hold_id=hold_id, reason=reason),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def release(self, request_id: str, hold_id: str) -> HoldInfo:
        reply = await call(self._stub.ReleaseHold(
            wallet_pb2.ReleaseHoldRequest(request_id=request_id, hold_id=hold_id),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def refund_hold(self, request_id: str, hold_id: str, amount: int, reason: str) -> HoldInfo:
        reply = await call(self._stub.RefundHold(
            wallet_pb2.RefundHoldRequest(request_id=request_id, hold_id=hold_id, amount=amount, reason=reason),
            metadata=self._md, timeout=self._timeout))
        return _hold(reply.hold)

    async def hold(self, hold_id: str) -> HoldInfo:
        reply = await call(self._stub.GetHold(wallet_pb2.GetHoldRequest(hold_id=hold_id), metadata=self._md,
                                              timeout=self._timeout))
        return _hold(reply.hold)

    async def send_gift(self, request_id: str, sender_id: str, creator_id: str, coins: int, gift_id: str) -> None:
        await call(self._stub.SendGift(
            wallet_pb2.SendGiftRequest(request_id=request_id, sender_id=sender_id, creator_id=creator_id,
                                       coins=coins, gift_id=gift_id),
            metadata=self._md, timeout=self._timeout))

    async def credit(self, request_id: str, user_id: str, currency: str, amount: int, reason: str,
                     reference: str) -> None:
        await call(self._stub.Credit(
            wallet_pb2.CreditRequest(request_id=request_id, user_id=user_id, currency=currency_value(currency),
                                     amount=amount, reason=reason, reference=reference),
            metadata=self._md, timeout=self._timeout))
