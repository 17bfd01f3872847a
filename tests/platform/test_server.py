"""The server factory and interceptors over real gRPC on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from points_platform.auth import OPERATOR_HEADER, allow, current_caller
from points_platform.client import bearer, error_info, error_reason
from points_platform.config import PlatformSettings
from points_platform.db import create_engine
from points_platform.errors import NotFound
from points_platform.server import RunningServer, ServiceSpec, create_server
from tests.conftest import NewDatabase
from tests.support.credentials import TOKENS as ALL_TOKENS
from tests.support.malformed import malformed_bodies
from tests.support.rpc import expect_error
from tests.support.wait import HANG_SECONDS, eventually

SERVICE = "test.v1.EchoService"
TOKENS = json.dumps({caller: ALL_TOKENS[caller] for caller in ("admin", "app")})
APP_TOKEN = ALL_TOKENS["app"]


async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request + b"|" + current_caller.get().encode()


async def who_acts(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return str(structlog.contextvars.get_contextvars().get("operator", "")).encode()


async def log_context(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return json.dumps(structlog.contextvars.get_contextvars()).encode()


async def fail(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    raise NotFound("THING_NOT_FOUND", "no such thing", metadata={"thing": "t1"})


async def crash(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    raise RuntimeError("secret connection string postgres://x:y@z")


# A slow call: it says when it has started and finishes when the test lets it.
SLOW_STARTED = asyncio.Event()
SLOW_RELEASED = asyncio.Event()


async def slow(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    SLOW_STARTED.set()
    await SLOW_RELEASED.wait()
    return b"done"


async def parse(request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request.service.encode()


async def collect(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    total = 0
    async for chunk in requests:
        total += len(chunk)
    return str(total).encode()


def register(server: grpc.aio.Server) -> None:
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Crash": grpc.unary_unary_rpc_method_handler(crash),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Admin": grpc.unary_unary_rpc_method_handler(echo),
        "WhoActs": grpc.unary_unary_rpc_method_handler(who_acts),
        "LogContext": grpc.unary_unary_rpc_method_handler(log_context),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Parse": grpc.unary_unary_rpc_method_handler(
            parse, request_deserializer=health_pb2.HealthCheckRequest.FromString  # type: ignore[arg-type]
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


CALLED_BY_BOTH = ("Echo", "Fail", "Crash", "Slow", "Collect", "Parse", "WhoActs", "LogContext")
POLICY = {name: allow("admin", "app") for name in CALLED_BY_BOTH} | {"Admin": allow("admin")}
SPEC = ServiceSpec(SERVICE, "points.test", POLICY, register)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    running = await create_server(PlatformSettings(port=0, tokens_json=TOKENS), SPEC)
    yield running
    await running.stop(0)


async def call(port: int, method: str, payload: bytes = b"hi", token: str | None = APP_TOKEN) -> bytes:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        rpc: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/{method}")
        result: bytes = await rpc(payload, metadata=bearer(token) if token else None, timeout=5)
        return result


async def test_authenticated_call_sees_its_caller(server: RunningServer) -> None:
    assert await call(server.port, "Echo") == b"hi|app"


@pytest.mark.parametrize(("caller", "operator", "logged"), [("admin", "dana", b"dana"), ("app", "dana", b"")])
async def test_the_operator_behind_an_admin_call_is_in_its_log_context(
    server: RunningServer, caller: str, operator: str, logged: bytes
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        rpc: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/WhoActs")
        metadata = (*bearer(ALL_TOKENS[caller]), (OPERATOR_HEADER, operator))
        assert await rpc(b"", metadata=metadata, timeout=5) == logged


@pytest.mark.parametrize(
    ("extra", "expected_request_id"), [((("x-request-id", "req-7"),), "req-7"), ((), None)]
)
async def test_the_log_context_names_the_request_the_caller_and_the_method(
    server: RunningServer, extra: tuple[tuple[str, str], ...], expected_request_id: str | None
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        rpc: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/LogContext")
        bound = json.loads(await rpc(b"", metadata=(*bearer(APP_TOKEN), *extra), timeout=5))
    request_id = bound.pop("request_id")
    assert bound == {"rpc_method": "LogContext", "caller": "app"}
    if expected_request_id is None:  # none sent: a fresh one per call
        assert len(request_id) == 32 and int(request_id, 16) >= 0
    else:
        assert request_id == expected_request_id


@pytest.mark.parametrize(("first", "second", "answered"), [("wrong", APP_TOKEN, False), (APP_TOKEN, "wrong", True)])
async def test_of_a_repeated_header_the_first_counts(
    server: RunningServer, first: str, second: str, answered: bool
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        rpc: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Echo")
        sent = rpc(b"hi", metadata=(*bearer(first), *bearer(second)), timeout=5)
        if answered:
            assert await sent == b"hi|app"
        else:
            await expect_error(sent, grpc.StatusCode.UNAUTHENTICATED)


@pytest.mark.parametrize(
    ("token", "method", "code", "reason"),
    [
        (None, "Echo", grpc.StatusCode.UNAUTHENTICATED, "MISSING_CREDENTIALS"),
        ("wrong", "Echo", grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_CREDENTIALS"),
        (APP_TOKEN, "Admin", grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED"),
        (APP_TOKEN, "Fail", grpc.StatusCode.NOT_FOUND, "THING_NOT_FOUND"),
    ],
)
async def test_failures_carry_code_and_error_info(
    server: RunningServer, token: str | None, method: str, code: grpc.StatusCode, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(server.port, method, token=token)
    assert caught.value.code() == code
    info = error_info(caught.value)
    assert info is not None and info.reason == reason and info.domain == "points.test"


async def test_unexpected_exception_is_internal_without_detail(server: RunningServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(server.port, "Crash")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"
    assert "secret" not in str(caught.value.trailing_metadata())


MALFORMED = malformed_bodies(health_pb2.HealthCheckRequest)


def _count(service: str, method: str, code: str) -> float:
    return REGISTRY.get_sample_value(
        "points_rpc_requests_total", {"service": service, "method": method, "code": code}
    ) or 0.0


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_bytes_that_do_not_parse_are_malformed_request_and_counted(server: RunningServer, body: bytes) -> None:
    """Without the tolerant deserializer grpc answers UNKNOWN "Unexpected DecodeError", uncounted."""
    assert await call(server.port, "Parse", health_pb2.HealthCheckRequest(service="s").SerializeToString()) == b"s"
    before = _count(SERVICE, "Parse", "INVALID_ARGUMENT")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(server.port, "Parse", body)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert info is not None and (info.reason, info.domain) == ("MALFORMED_REQUEST", "points.test")

    async def is_counted() -> bool:
        # The server counts the call as it ends, which may be just after the client has its answer.
        return _count(SERVICE, "Parse", "INVALID_ARGUMENT") == before + 1

    await eventually(is_counted, what="the malformed call counted")


async def test_an_unknown_caller_is_unauthenticated_before_its_bytes_are_judged(server: RunningServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(server.port, "Parse", MALFORMED["bad varint"], token=None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_refuse_malformed_bytes(server: RunningServer) -> None:
    health = "grpc.health.v1.Health"
    before = _count(health, "Check", "INVALID_ARGUMENT")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        check: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{health}/Check")
        caught = await expect_error(check(MALFORMED["truncated length"], timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        assert error_reason(caught) == "MALFORMED_REQUEST"
        watch: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(f"/{health}/Watch")
        with pytest.raises(grpc.aio.AioRpcError) as watched:
            async for _ in watch(MALFORMED["invalid UTF-8"], timeout=5):
                pass
        assert watched.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reflect: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        with pytest.raises(grpc.aio.AioRpcError) as reflected:
            async for _ in reflect(iter([MALFORMED["deep group nesting"]]), timeout=5):
                pass
        assert reflected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(reflected.value) == "MALFORMED_REQUEST"
        # Well-formed calls still pass untouched.
        assert await check(health_pb2.HealthCheckRequest().SerializeToString(), timeout=5)
    assert _count(health, "Check", "INVALID_ARGUMENT") == before + 1


async def test_client_streaming_goes_through_the_chain(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        rpc: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(f"/{SERVICE}/Collect")
        assert await rpc(iter([b"ab", b"cde"]), metadata=bearer(APP_TOKEN)) == b"5"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await rpc(iter([b"ab"]))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_follows_database_reachability(server: RunningServer, new_database: NewDatabase) -> None:
    async def status() -> int:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            # types-grpcio-health-checking declares no methods on HealthStub.
            health: Any = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
            return int(reply.status)

    assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING  # nothing probed yet
    good = create_engine(await new_database("health"))
    probe = server.watch_database(good, interval=0.05)
    await _eventually(status, health_pb2.HealthCheckResponse.SERVING)
    assert REGISTRY.get_sample_value("points_serving") == 1  # what `points up` waits on per worker
    # Stop the probe before disposing: a live probe would reopen a pooled connection that
    # nothing closes (a ResourceWarning at some later garbage collection).
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    await good.dispose()

    down = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    probe = server.watch_database(down, interval=0.05)
    await _eventually(status, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert REGISTRY.get_sample_value("points_serving") == 0
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    await down.dispose()


async def _eventually(probe: Callable[[], Awaitable[int]], expected: int) -> None:
    async def reached() -> bool:
        return await probe() == expected

    await eventually(reached, what=f"health status {expected}")


async def test_graceful_stop_drains_in_flight_calls() -> None:
    running = await create_server(PlatformSettings(port=0, tokens_json=TOKENS), SPEC)
    SLOW_STARTED.clear()
    SLOW_RELEASED.clear()
    in_flight = asyncio.create_task(call(running.port, "Slow"))
    await asyncio.wait_for(SLOW_STARTED.wait(), HANG_SECONDS)  # the call reached the server
    stopping = asyncio.create_task(running.stop(grace=HANG_SECONDS))

    async def refuses_new_calls() -> bool:
        try:
            await call(running.port, "Echo")
        except grpc.aio.AioRpcError:
            return True
        return False

    await eventually(refuses_new_calls, what="the server is stopping")
    assert not in_flight.done()  # stopping, and the call in flight is still running
    SLOW_RELEASED.set()
    assert await in_flight == b"done"
    await stopping


# --- mutual TLS -----------------------------------------------------------------------------


def _cert(name: str, issuer_key: ec.EllipticCurvePrivateKey | None, issuer: x509.Name | None, ca: bool = False):  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.DNSName(name)]), critical=False
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _pem(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[bytes, bytes]:
    return (
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM),
    )


async def test_mutual_tls_names_the_caller_by_certificate(tmp_path: Path) -> None:
    ca_key, ca_cert = _cert("points-test-ca", None, None, ca=True)
    server_key, server_cert = _cert("localhost", ca_key, ca_cert.subject)
    files = {}
    for name, (key, cert) in {"server": (server_key, server_cert)}.items():
        key_pem, cert_pem = _pem(key, cert)
        (tmp_path / f"{name}.key").write_bytes(key_pem)
        (tmp_path / f"{name}.crt").write_bytes(cert_pem)
        files[name] = (tmp_path / f"{name}.key", tmp_path / f"{name}.crt")
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "ca.crt").write_bytes(ca_pem)
    settings = PlatformSettings(
        port=0,
        tokens_json="{}",
        tls_key_file=str(files["server"][0]),
        tls_cert_file=str(files["server"][1]),
        tls_client_ca_file=str(tmp_path / "ca.crt"),
    )
    running = await create_server(settings, SPEC)
    try:

        async def call_as(common_name: str, method: str) -> bytes:
            key, cert = _cert(common_name, ca_key, ca_cert.subject)
            key_pem, cert_pem = _pem(key, cert)
            creds = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
            async with grpc.aio.secure_channel(
                f"localhost:{running.port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]
            ) as channel:
                rpc: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/{method}")
                result = await rpc(b"x", timeout=5)
                return result

        assert await call_as("admin", "Admin") == b"x|admin"
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await call_as("app", "Admin")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await call_as("mallory", "Echo")
        assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A client without a certificate cannot even complete the handshake.
        async with grpc.aio.secure_channel(
            f"localhost:{running.port}", grpc.ssl_channel_credentials(ca_pem)
        ) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                rpc: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = anonymous.unary_unary(f"/{SERVICE}/Echo")
                await rpc(b"x", timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(0)


async def test_workers_share_a_port_only_when_reuse_port_is_on() -> None:
    first = await create_server(PlatformSettings(port=0, tokens_json=TOKENS, reuse_port=True), SPEC)
    try:
        second = await create_server(PlatformSettings(port=first.port, tokens_json=TOKENS, reuse_port=True), SPEC)
        await second.stop(0)
        with pytest.raises(RuntimeError, match="Failed to bind"):
            await create_server(PlatformSettings(port=first.port, tokens_json=TOKENS), SPEC)
    finally:
        await first.stop(0)
