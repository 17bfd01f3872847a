"""Adapter to the wallet: POINTS credits over gRPC as the `earning` caller."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import structlog

from earning.store.outbox import PendingCredit
from points.common.v1 import common_pb2
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.client import bearer, error_reason

log = structlog.get_logger("earning.wallet")

MAX_BATCH = 1000


class WalletCredits:
    """Sends credits; one Credit for one entry, CreditBatch (chunks of 1000) for more."""

    def __init__(self, channel: grpc.aio.Channel, token: str, timeout_seconds: float) -> None:
        self._stub = wallet_pb2_grpc.WalletServiceStub(channel)
        self._metadata = bearer(token)
        self._timeout = timeout_seconds

    async def credit(self, entries: Sequence[PendingCredit]) -> tuple[dict[str, str], str]:
        """(request_id -> wallet transaction id for what was credited, error text for the rest)."""
        done: dict[str, str] = {}
        error = ""
        for start in range(0, len(entries), MAX_BATCH):
            chunk = entries[start : start + MAX_BATCH]
            try:
                if len(chunk) == 1:
                    entry = chunk[0]
                    reply = await self._stub.Credit(
                        wallet_pb2.CreditRequest(
                            request_id=entry.request_id, user_id=entry.user_id, currency=common_pb2.CURRENCY_POINTS,
                            amount=entry.amount, reason=entry.reason, reference=entry.reference,
                        ),
                        metadata=self._metadata,
                        timeout=self._timeout,
                    )
                    done[entry.request_id] = reply.transaction.transaction_id
                    continue
                batch = await self._stub.CreditBatch(
                    wallet_pb2.CreditBatchRequest(
                        entries=[
                            wallet_pb2.CreditBatchEntry(
                                request_id=e.request_id, user_id=e.user_id, currency=common_pb2.CURRENCY_POINTS,
                                amount=e.amount, reason=e.reason, reference=e.reference,
                            )
                            for e in chunk
                        ]
                    ),
                    metadata=self._metadata,
                    timeout=self._timeout,
                )
                for result in batch.results:
                    if result.error_reason:
                        error = result.error_reason
                        log.warning("wallet_credit_refused", request_id=result.request_id, reason=result.error_reason)
                    else:
                        done[result.request_id] = result.transaction.transaction_id
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                error = f"{getattr(code, 'name', 'ERROR')} {error_reason(exc)}".strip()
                log.warning("wallet_credit_failed", error=error, entries=len(chunk))
        return done, error
