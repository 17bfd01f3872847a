"""One call wrapper (the platform's "interceptor chain"): request id, logging, metrics,
authentication, error mapping.

Each concern needs the servicer context (the TLS peer; aborting with a status), which gRPC's
asyncio interceptors do not see, so each is applied by wrapping the handler's behaviour. The
wrapping happens as handlers are registered (`CallWrapper.registering`), not through a
`grpc.aio.ServerInterceptor`, which grpc would run as a chain of coroutines on every call only
to hand back the same wrapped handler (docs/benchmarks.md, "Call wrapper"). Every handler's request deserializer is made
tolerant (`malformed.py`): bytes that do not parse are refused as MALFORMED_REQUEST after
authentication. Health and reflection are public and the benchmarks' baseline: they are
wrapped only to refuse (and count) a malformed request, and otherwise run untouched.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeAlias

import grpc
import structlog
from prometheus_client import Counter, Histogram

from points_platform.auth import (
    OPERATOR_HEADER,
    USER_HEADER,
    USER_SCOPED_CALLERS,
    Authenticator,
    current_caller,
    current_user,
)
from points_platform.db import is_database_unavailable
from points_platform.errors import DomainError, Unavailable, to_rpc_status
from points_platform.malformed import MalformedRequest, parsed_stream, require_parsed, tolerant

log = structlog.get_logger("points.rpc")

RPC_TOTAL = Counter("points_rpc_requests_total", "RPCs handled", ["service", "method", "code"])
RPC_SECONDS = Histogram(
    "points_rpc_duration_seconds",
    "RPC handling time",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
AUTH_FAILURES = Counter("points_rpc_auth_failures_total", "Rejected callers", ["service", "code"])

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# String aliases: grpc's classes are generic only in their type stubs.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class CallWrapper:
    """Applies the platform's per-call concerns to every method, wrapping each handler once as the
    server learns it (`registering`), so grpc runs no interceptor per call."""

    def __init__(self, authenticator: Authenticator, error_domain: str) -> None:
        self._auth = authenticator
        self._domain = error_domain

    def registering(self, server: grpc.aio.Server) -> grpc.aio.Server:
        """`server` as the services' register functions see it: the handlers they add are wrapped."""
        return _WrappingRegistrar(server, self)

    def wrap(self, handler: Handler, full_method: str) -> Handler:
        service, _, method = full_method.rpartition("/")
        public = full_method.startswith(PUBLIC_PREFIXES)
        call = _Call(self, service.lstrip("/"), method, public)
        parse, serialize = tolerant(handler.request_deserializer), handler.response_serializer
        if handler.unary_unary:
            wrap = call.public_unary if public else call.unary_response
            return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), parse, serialize)
        if handler.stream_unary:
            wrap = call.public_unary if public else call.unary_response
            return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, True), parse, serialize)
        # Streaming responses: only in public services today (health Watch, reflection); the aio
        # server hands these behaviours async iterators, whatever the sync-typed stubs say.
        wrap_stream = call.public_stream if public else call.stream_response
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                wrap_stream(handler.unary_stream, False), parse, serialize  # type: ignore[arg-type]
            )
        return grpc.stream_stream_rpc_method_handler(
            wrap_stream(handler.stream_stream, True), parse, serialize  # type: ignore[arg-type]
        )


class _WrappingRegistrar(grpc.aio.Server):
    """Stands in for the server while handlers are added (generated `add_*_to_server` code, health,
    reflection): registered methods are wrapped at once, generic handlers on their first call. It
    is a `grpc.aio.Server` because registration code checks (reflection picks its asyncio servicer
    so); everything but adding handlers is the server's own."""

    def __init__(self, server: grpc.aio.Server, wrapper: CallWrapper) -> None:
        self._server = server
        self._wrapper = wrapper

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_WrappedGeneric(h, self._wrapper) for h in generic_rpc_handlers))

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, Handler]) -> None:
        self._server.add_registered_method_handlers(service_name, {
            name: self._wrapper.wrap(handler, f"/{service_name}/{name}") for name, handler in method_handlers.items()
        })

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self._server.wait_for_termination(timeout)


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose handlers come wrapped, each built on its method's first call."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrapper: CallWrapper) -> None:
        self._inner = inner
        self._wrapper = wrapper
        self._wrapped: dict[str, Handler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        full_method: str = handler_call_details.method
        wrapped = self._wrapped.get(full_method)
        if wrapped is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrapped[full_method] = self._wrapper.wrap(handler, full_method)
        return wrapped


class _Call:
    """The wrapping of one method, with everything constant per method resolved once: its metric
    children, its policy entry and its user scope."""

    def __init__(self, owner: CallWrapper, service: str, method: str, public: bool) -> None:
        self.owner = owner
        self.service = service
        self.method = method
        auth = owner._auth
        self._allowed = auth.allowed_callers(method)
        self._user_field = auth.user_field(method)
        self._peer_certs = auth.trusts_client_cert
        # Code name -> RPC_TOTAL child, filled as codes occur (OK is the hot one).
        self._totals: dict[str, Any] = {}
        if not public:  # public calls have no OK or timing series: they are counted only when refused
            self._seconds = RPC_SECONDS.labels(service, method)
            self._ok = self._total("OK")

    def _total(self, code: str) -> Any:
        child = self._totals.get(code)
        if child is None:
            child = self._totals[code] = RPC_TOTAL.labels(self.service, self.method, code)
        return child

    def unary_response(self, behavior: Callable[..., Any], client_stream: bool) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            try:
                return await behavior(self._admit(request, client_stream, context), context)
            except Exception as exc:  # noqa: BLE001 - every failure is mapped, none leaks
                await self._fail(exc, context)
            finally:
                self._end(started, context)

        return wrapped

    def stream_response(
        self, behavior: Callable[..., AsyncIterator[Any]], client_stream: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for response in behavior(self._admit(request, client_stream, context), context):
                    yield response
            except Exception as exc:  # noqa: BLE001
                await self._fail(exc, context)
            finally:
                self._end(started, context)

        return wrapped

    def public_unary(self, behavior: Callable[..., Any], client_stream: bool) -> Callable[..., Awaitable[Any]]:
        """A public method: untouched unless its request did not parse."""

        async def wrapped(request: Any, context: Context) -> Any:
            try:
                return await behavior(self._parsed(request, client_stream), context)
            except MalformedRequest as exc:
                await self._refuse_public(exc, context)

        return wrapped

    def public_stream(
        self, behavior: Callable[..., AsyncIterator[Any]], client_stream: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for response in behavior(self._parsed(request, client_stream), context):
                    yield response
            except MalformedRequest as exc:
                await self._refuse_public(exc, context)

        return wrapped

    async def _refuse_public(self, exc: MalformedRequest, context: Context) -> NoReturn:
        """Public calls are not timed or counted when they succeed; a malformed one is counted."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(rpc_method=self.method)
        self._total(exc.code.name).inc()
        await self._fail(exc, context)

    def _parsed(self, request: Any, client_stream: bool) -> Any:
        """The request, refused if it did not parse; a client stream, checked message by message."""
        if client_stream:
            return parsed_stream(request, self.method)
        require_parsed(request, self.method)
        return request

    def _admit(self, request: Any, client_stream: bool, context: Context) -> Any:
        """Bind the call's log context, name the caller and check the policy, then (only for a caller
        who may call at all) refuse a request that did not parse, then check the user scope."""
        # The first value of each header, as the policy reads it: one pass, not one scan per header.
        headers: dict[str, str | bytes] = dict(reversed(tuple(context.invocation_metadata() or ())))
        request_id = str(headers.get("x-request-id") or "")
        if not request_id:
            request_id = str(getattr(request, "request_id", "") or "") or secrets.token_hex(16)
        structlog.contextvars.clear_contextvars()
        auth = self.owner._auth
        peer: Mapping[str, Iterable[bytes]] = (context.auth_context() or {}) if self._peer_certs else {}
        try:
            caller = auth.identify_by(headers.get("authorization"), peer)
        except Exception:  # logged (rpc_rejected) under the call's context, without a caller
            structlog.contextvars.bind_contextvars(request_id=request_id, rpc_method=self.method)
            raise
        operator = str(headers.get(OPERATOR_HEADER) or "")
        if caller == "admin" and operator and operator.isascii() and operator.isprintable() and len(operator) <= 64:
            # Only the admin caller speaks for an operator; anyone else naming one is ignored.
            structlog.contextvars.bind_contextvars(
                request_id=request_id, rpc_method=self.method, caller=caller, operator=operator
            )
        else:
            structlog.contextvars.bind_contextvars(request_id=request_id, rpc_method=self.method, caller=caller)
        current_caller.set(caller)
        if caller not in self._allowed:
            auth.authorize(caller, self.method)  # raises CALLER_NOT_ALLOWED
        request = self._parsed(request, client_stream)
        field = self._user_field
        if field is not None and caller in USER_SCOPED_CALLERS:
            current_user.set(auth.scope_by(self.method, field, headers.get(USER_HEADER) or "", request))
        else:
            current_user.set("")
        return request

    async def _fail(self, exc: Exception, context: Context) -> NoReturn:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc  # the servicer aborted on purpose; its status stands
        if isinstance(exc, DomainError):
            status = to_rpc_status(exc, self.owner._domain)
            if exc.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                AUTH_FAILURES.labels(self.service, exc.code.name).inc()
                log.warning("rpc_rejected", code=exc.code.name, reason=exc.reason)
            else:
                log.info("rpc_failed", code=exc.code.name, reason=exc.reason)
            await context.abort(
                exc.code, status.message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),)
            )
        if is_database_unavailable(exc):
            log.warning("rpc_database_unavailable", error=type(exc).__name__)
            await self._fail(Unavailable("DATABASE_UNAVAILABLE", "the database is unavailable; retry later"), context)
        if isinstance(exc, NotImplementedError):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.method} is not implemented yet")
        log.error("rpc_crashed", exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable: abort raises")

    def _end(self, started: float, context: Context) -> None:
        code = context.code()
        if code is None:
            self._ok.inc()
        else:
            self._total(_status_name(code)).inc()
        self._seconds.observe(time.perf_counter() - started)


def _status_name(code: object) -> str:
    """context.code() is None for OK, else a StatusCode (or its raw int on some paths)."""
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
