"""The wallet as earning's `CreditPort`: POINTS credits over gRPC as the `earning` caller.

It also decides which wallet answers are final. A transient failure (the wallet unreachable,
slow, contended or crashing) leaves a credit for the next attempt; a refusal the wallet would
repeat for the same request (invalid, key reused, not permitted...) is reported as refused, and
the outbox dead-letters it instead of retrying forever.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import structlog

from earning.domain.credit import PendingCredit
from earning.use_cases.ports import CreditPort, CreditReport
from points.common.v1 import common_pb2
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.client import bearer, error_reason

log = structlog.get_logger("earning.wallet")

MAX_BATCH = 1000

# Worth another attempt: the wallet did not decide (down, deadline, contention, overload) or failed
# on its side (INTERNAL/UNKNOWN: a crash or a lost database connection may pass). Every other
# status is the wallet's answer to this request, and the same request would get it again.
RETRYABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
})
# A CreditBatch entry reports a reason without its status: these are the wallet's ABORTED ones
# (a concurrent call with the same request id, a serialization conflict). Any other reason of an
# entry is a refusal (IDEMPOTENCY_KEY_REUSED, INVALID_FIELD, a caller not allowed...).
RETRYABLE_ENTRY_REASONS = frozenset({"CONCURRENT_REQUEST", "TRANSACTION_CONFLICT"})
# The user is suspended: the credit is held (resent later), neither retried now nor dead-lettered.
SUSPENDED_REASON = "USER_SUSPENDED"


# The wallet failed on its side. In a batch one bad entry fails the whole call, so the batch is
# split until the failing entries stand alone and the others are credited; an entry that fails
# alone is reported as suspect (the outbox dead-letters it after a limit). Splitting stops after
# SPLIT_CALLS extra calls per send: isolating one bad entry among 1,000 takes ~20, and a wallet
# failing everything is not hammered with 2n-1 calls.
WALLET_FAILURE_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
SPLIT_CALLS = 32


def is_retryable(code: grpc.StatusCode | None) -> bool:
    """A failed call's status: retry it, or is the refusal final? (No status: the call never got one.)"""
    return code is None or code in RETRYABLE_CODES


class WalletCredits(CreditPort):
    """Sends credits; one Credit for one entry, CreditBatch (chunks of 1000) for more."""

    def __init__(self, channel: grpc.aio.Channel, token: str, timeout_seconds: float) -> None:
        self._stub = wallet_pb2_grpc.WalletServiceStub(channel)
        self._metadata = bearer(token)
        self._timeout = timeout_seconds

    async def credit(self, entries: Sequence[PendingCredit]) -> CreditReport:
        """What was credited, what the wallet refused for good (and why), why the rest failed this time."""
        report = CreditReport()
        splits_left = SPLIT_CALLS

        async def send(chunk: Sequence[PendingCredit]) -> None:
            nonlocal splits_left
            try:
                if len(chunk) == 1:
                    await self._credit_one(chunk[0], report)
                else:
                    await self._credit_batch(chunk, report)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                error = f"{getattr(code, 'name', 'ERROR')} {error_reason(exc)}".strip()
                if error_reason(exc) == SUSPENDED_REASON:  # a single Credit: the batch answers per entry
                    report.held.update((e.request_id, SUSPENDED_REASON) for e in chunk)
                elif code in WALLET_FAILURE_CODES and len(chunk) > 1 and splits_left >= 2:
                    log.warning("wallet_credit_batch_split", error=error, entries=len(chunk))
                    splits_left -= 2
                    await send(chunk[: len(chunk) // 2])
                    await send(chunk[len(chunk) // 2 :])
                elif code in WALLET_FAILURE_CODES and len(chunk) == 1:
                    report.error = error
                    report.suspect[chunk[0].request_id] = error
                    log.warning("wallet_credit_failed_alone", error=error, request_id=chunk[0].request_id)
                elif is_retryable(code):
                    report.error = error
                    log.warning("wallet_credit_failed", error=error, entries=len(chunk))
                else:
                    report.refused.update((e.request_id, error) for e in chunk)
                    log.warning("wallet_credit_refused", error=error, entries=len(chunk))

        for start in range(0, len(entries), MAX_BATCH):
            await send(entries[start : start + MAX_BATCH])
        return report

    async def _credit_one(self, entry: PendingCredit, report: CreditReport) -> None:
        reply = await self._stub.Credit(
            wallet_pb2.CreditRequest(
                request_id=entry.request_id, user_id=entry.user_id, currency=common_pb2.CURRENCY_POINTS,
                amount=entry.amount, reason=entry.reason, reference=entry.reference,
            ),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        report.credited[entry.request_id] = reply.transaction.transaction_id

    async def _credit_batch(self, chunk: Sequence[PendingCredit], report: CreditReport) -> None:
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
            if not result.error_reason:
                report.credited[result.request_id] = result.transaction.transaction_id
            elif result.error_reason == SUSPENDED_REASON:
                report.held[result.request_id] = SUSPENDED_REASON
            elif result.error_reason in RETRYABLE_ENTRY_REASONS:
                report.error = result.error_reason
                log.warning("wallet_credit_failed", request_id=result.request_id, error=result.error_reason)
            else:
                report.refused[result.request_id] = result.error_reason
                log.warning("wallet_credit_refused", request_id=result.request_id, error=result.error_reason)
