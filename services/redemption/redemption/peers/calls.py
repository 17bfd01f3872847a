"""A call to a peer with its gRPC errors sorted into business refusals (the saga compensates) and
transient failures (the saga retries later), and the proto values both peers share."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import grpc

from points.common.v1 import common_pb2
from points_platform.client import error_reason
from redemption.use_cases.ports import PeerRefusedError, PeerUnavailableError

T = TypeVar("T")

# Codes that mean "the peer said no" when it also names a reason; anything else is retried.
_REFUSAL_CODES = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE,
})


async def call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        reason = error_reason(exc)
        if exc.code() in _REFUSAL_CODES and reason:
            raise PeerRefusedError(reason) from None
        raise PeerUnavailableError(f"{exc.code().name}: {exc.details()}") from None


def currency_name(value: common_pb2.Currency.ValueType) -> str:
    return common_pb2.Currency.Name(value).removeprefix("CURRENCY_")


def currency_value(name: str) -> common_pb2.Currency.ValueType:
    return common_pb2.Currency.Value(f"CURRENCY_{name}")


def time_of(ts: object) -> datetime | None:
    """A proto Timestamp as a datetime; unset (zero) is None."""
    seconds = getattr(ts, "seconds", 0)
    nanos = getattr(ts, "nanos", 0)
    if not seconds and not nanos:
        return None
    return datetime.fromtimestamp(seconds + nanos / 1e9, UTC)
