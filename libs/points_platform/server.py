"""gRPC server factory and process lifecycle shared by the four services.

`create_server` builds a server tests can bind to port 0; `run_service` is the process
loop: serve, report health from database reachability, stop gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import Gauge, start_http_server
from sqlalchemy.ext.asyncio import AsyncEngine

from points_platform.auth import Authenticator, Policy, UserScope
from points_platform.config import PlatformSettings
from points_platform.db import is_reachable
from points_platform.interceptors import CallWrapper

log = structlog.get_logger("points.server")

Background = Callable[[], Awaitable[None]]

GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (default 700)


def run_process(main: Coroutine[Any, Any, None]) -> None:
    """Run a service process's main coroutine on uvloop (a faster event loop for asyncpg and
    grpc.aio than asyncio's default).

    The garbage collector skips the objects that exist at start (modules, protobuf descriptors:
    frozen, never scanned again) and runs its young generation less often: a batch allocates
    thousands of short-lived objects, and the default threshold (700) runs a collection every few
    events (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    uvloop.run(main)


@dataclass(frozen=True)
class ServiceSpec:
    """What the platform needs to know to serve one service."""

    full_name: str  # e.g. points.wallet.v1.WalletService
    error_domain: str  # e.g. points.wallet
    policy: Policy
    register: Callable[[grpc.aio.Server], None]
    # Calls on one user's data: an `app` call must name that user in its user header (auth.UserScope).
    user_scoped: UserScope | None = None


# Per process (each worker has its own metrics port): `points up` waits on it for a worker that
# shares its gRPC port with others, where a health check may reach any of them.
SERVING = Gauge("points_serving", "1 while this process's health is SERVING (its database reachable), else 0")


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    spec: ServiceSpec
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", self.spec.full_name):
            await self.health.set(name, status)
        SERVING.set(1 if serving else 0)

    def watch_database(self, engine: AsyncEngine, interval: float) -> asyncio.Task[None]:
        """Keep health in step with database reachability (until stopped or the task is cancelled)."""

        async def loop() -> None:
            while True:
                await self.set_serving(await is_reachable(engine))
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop(), name="health-probe")
        self._tasks.append(task)
        return task

    def run_in_background(self, jobs: Sequence[Background]) -> None:
        for job in jobs:
            self._tasks.append(asyncio.create_task(_supervised(job), name=getattr(job, "__name__", "job")))

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _supervised(job: Background) -> None:
    """Background jobs (sweepers, recovery) restart after an unexpected failure."""
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the job alive, but say why it died
            log.exception("background_job_failed", job=getattr(job, "__name__", "job"))
            await asyncio.sleep(1.0)


def _server_credentials(settings: PlatformSettings) -> grpc.ServerCredentials:
    key = Path(settings.tls_key_file).read_bytes()
    cert = Path(settings.tls_cert_file).read_bytes()
    ca = Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


async def create_server(settings: PlatformSettings, spec: ServiceSpec) -> RunningServer:
    """Build and start a server with health, reflection and the platform interceptors."""
    authenticator = Authenticator(
        settings.load_tokens(), spec.policy, trust_client_cert=bool(settings.tls_client_ca_file),
        user_scoped=spec.user_scoped,
    )
    limits = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", int(settings.reuse_port)),
    ]
    server = grpc.aio.server(options=limits)
    # Every handler, health's and reflection's too, is added through the call wrapper.
    registering = CallWrapper(authenticator, spec.error_domain).registering(server)
    spec.register(registering)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, registering)
    reflection.enable_server_reflection(
        (spec.full_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        registering,
    )
    address = f"{settings.host}:{settings.port}"
    if settings.tls_enabled:
        port = server.add_secure_port(address, _server_credentials(settings))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    await server.start()
    running = RunningServer(server, port, health, spec)
    await running.set_serving(False)
    return running


async def run_service(
    settings: PlatformSettings,
    spec: ServiceSpec,
    engine: AsyncEngine,
    background: Sequence[Background] = (),
    on_stop: Sequence[Background] = (),
) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls and stop. `on_stop` runs after the
    drain and before the engine closes (e.g. the outbox relay's `close`, which marks its last pass)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics_http = None
    if settings.metrics_port:
        metrics_http, _ = start_http_server(settings.metrics_port, addr=settings.host)
    running = await create_server(settings, spec)
    running.watch_database(engine, settings.health_check_interval_seconds)
    running.run_in_background(background)
    log.info("service_started", service=spec.full_name, port=running.port, metrics_port=settings.metrics_port)
    await stop.wait()
    log.info("service_stopping", grace_seconds=settings.shutdown_grace_seconds)
    await running.stop(settings.shutdown_grace_seconds)
    for stop_job in on_stop:
        await stop_job()
    await engine.dispose()
    if metrics_http is not None:
        metrics_http.shutdown()
    log.info("service_stopped", service=spec.full_name)
