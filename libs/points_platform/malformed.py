"""Requests whose bytes do not parse: INVALID_ARGUMENT `MALFORMED_REQUEST`, not UNKNOWN.

grpc parses a request with the handler's deserializer before any interceptor code runs, and a
parse failure there ends the call as UNKNOWN "Unexpected DecodeError", before authentication,
unlogged and uncounted. The interceptor therefore swaps in a deserializer that answers a
`Malformed` marker instead of raising; the wrapped handler refuses the marker with a typed error,
after authentication, so the call is logged, counted and mapped like any other refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from points_platform.errors import InvalidArgument

Deserializer = Callable[[bytes], Any]


class Malformed:
    """Stands in for a request message whose bytes did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """`deserializer`, answering `Malformed` where it would raise (None: raw bytes, nothing to parse)."""
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(raw: bytes) -> Any:
        try:
            return parse(raw)
        except Exception as exc:  # noqa: BLE001 - any failure to parse the caller's bytes is the caller's
            return Malformed(type(exc).__name__)

    return deserialize


class MalformedRequest(InvalidArgument):
    """The refusal of a request that did not parse (its own class: health and reflection, which
    raise no domain errors, are wrapped only to catch this one)."""

    def __init__(self, method: str) -> None:
        super().__init__("MALFORMED_REQUEST", f"the request is not a valid {method} message")


def require_parsed(request: Any, method: str) -> None:
    if isinstance(request, Malformed):
        raise MalformedRequest(method)


async def parsed_stream(requests: AsyncIterator[Any], method: str) -> AsyncIterator[Any]:
    """A client stream's messages; the first that did not parse ends the call as MALFORMED_REQUEST."""
    async for request in requests:
        require_parsed(request, method)
        yield request
