"""Calling services in tests: expected errors, timestamps, status codes of fuzzed calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from points_platform.client import error_reason

T = TypeVar("T")

# Never an acceptable answer: the service failed instead of judging the request.
FORBIDDEN = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


def ts(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


async def expect_error(
    awaitable: Awaitable[Any], code: grpc.StatusCode, reason: str | None = None
) -> grpc.aio.AioRpcError:
    """The call fails with `code` (and ErrorInfo `reason` when given); the error, for more checks."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    assert caught.value.code() == code, caught.value.details()
    if reason is not None:
        assert error_reason(caught.value) == reason, caught.value.details()
    return caught.value


async def status_of(call: Callable[[], Awaitable[Any]]) -> grpc.StatusCode:
    """OK, or the status code the call failed with; the call is made here, on the running loop."""
    try:
        await call()
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], seconds: float = 60) -> T:
    """Run `coro` on the test's event loop from hypothesis' worker thread (servers live on that loop)."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=seconds)
