"""`points bench wrapper`: what the platform's call wrapper (`points_platform/interceptors.py`)
costs per call, against the same handler served bare.

One trivial unary method, `points.bench.v1.Bench/Check` (a HealthCheckRequest naming a user in
`service`; the handler only answers), is served by a real grpc.aio server process on loopback,
started as a service starts (uvloop, the services' GC settings), in one of three ways:

- `bare`: no interceptor (sent the same request and headers as `wrapped`);
- `wrapped`: `create_server`, the platform's full chain with a real policy: a bearer token, the
  caller policy, and a user-scoped method whose request must name the user of `x-points-user`
  (the path of a read such as wallet `GetBalance`);
- `health`: `grpc.health.v1.Health/Check` on that same wrapped server, the baseline every other
  benchmark divides by (public methods pass the chain only to refuse a malformed request).

h2load (C; one thread) sends the same request and headers to each for a warm-up and then a
measured window; a round measures each server once, and rounds alternate their order (A B C,
C B A, ...) because the shared machine's speed drifts within minutes. Per server: calls/s, and
its process's CPU per call (its own CPU time from /proc over the measured window, divided by the
calls answered). Only ratios within one round compare.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from points_cli.bench import h2load
from points_cli.bench.cpu import process_seconds
from points_platform.auth import USER_HEADER, allow
from points_platform.config import PlatformSettings
from points_platform.logs import configure_logging
from points_platform.server import ServiceSpec, create_server, run_process

MODES = ("bare", "wrapped", "health")
SERVICE = "points.bench.v1.Bench"
CHECK = f"/{SERVICE}/Check"
USER = "bench-user-1"
TOKEN_ENV = "POINTS_BENCH_WRAPPER_TOKEN"
REQUEST = health_pb2.HealthCheckRequest(service=USER)


@dataclass(frozen=True)
class Sample:
    """One server measured once."""

    mode: str
    round: int
    calls: int
    calls_per_second: float
    cpu_us_per_call: float


def _headers(mode: str, token: str) -> list[tuple[str, str]]:
    """The bare server gets the wrapped one's headers too: grpc turns every header into Python
    objects for every call, read or not, and that cost is the caller's, not the wrapper's."""
    if mode == "health":
        return []
    return [("authorization", f"Bearer {token}"), (USER_HEADER, USER)]


def measure(mode: str, number: int, *, token: str, warmup: float, duration: float, concurrency: int,
            connections: int, server_token: str | None = None) -> Sample:
    """Start a server process in `mode` knowing `server_token` (default: the `token` sent), warm it
    up, measure it, stop it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "points_cli.bench.wrapper", mode], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env={**os.environ, TOKEN_ENV: server_token or token},
    )
    try:
        assert server.stdout is not None
        address = f"127.0.0.1:{int(server.stdout.readline())}"
        path = h2load.HEALTH_CHECK if mode == "health" else CHECK
        body = b"" if mode == "health" else REQUEST.SerializeToString()
        load: dict[str, Any] = {
            "concurrency": concurrency, "connections": connections, "body": body, "headers": _headers(mode, token),
        }
        warm = h2load.drive(address, path, duration=warmup, **load)
        before = process_seconds(server.pid)
        run = h2load.drive(address, path, duration=duration, **load)
        after = process_seconds(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=60)
    handled = int(out.split()[-1]) if mode != "health" else None
    # h2load counts any HTTP 200 as a success, a refused gRPC call included: every call it
    # counted must have reached the handler.
    if handled is not None and handled < warm.succeeded + run.succeeded:
        raise RuntimeError(f"{mode}: {warm.succeeded + run.succeeded} calls answered, {handled} reached the handler")
    if before is None or after is None or not run.succeeded:
        raise RuntimeError(f"{mode}: nothing measured (no /proc, or no call answered)")
    return Sample(mode, number, run.succeeded, run.rate, 1e6 * (after - before) / run.succeeded)


def run_rounds(*, rounds: int, warmup: float, duration: float, concurrency: int, connections: int) -> list[Sample]:
    token = secrets.token_urlsafe(32)
    samples: list[Sample] = []
    for number in range(1, rounds + 1):
        order = MODES if number % 2 else tuple(reversed(MODES))
        for mode in order:
            samples.append(measure(
                mode, number, token=token, warmup=warmup, duration=duration, concurrency=concurrency,
                connections=connections,
            ))
    return samples


def ratios(samples: list[Sample]) -> list[tuple[int, float, float]]:
    """Per round: (round, wrapped/bare calls/s, wrapped/bare CPU per call)."""
    out = []
    for number in sorted({s.round for s in samples}):
        by_mode = {s.mode: s for s in samples if s.round == number}
        bare, wrapped = by_mode.get("bare"), by_mode.get("wrapped")
        if bare and wrapped and bare.calls_per_second and bare.cpu_us_per_call:
            out.append((
                number, wrapped.calls_per_second / bare.calls_per_second, wrapped.cpu_us_per_call / bare.cpu_us_per_call
            ))
    return out


def format_report(samples: list[Sample]) -> str:
    lines = [f"{'round':>5} {'server':<8}{'calls/s':>10}{'CPU us/call':>13}"]
    lines += [f"{s.round:>5} {s.mode:<8}{s.calls_per_second:>10.0f}{s.cpu_us_per_call:>13.1f}" for s in samples]
    per_round = ratios(samples)
    if per_round:
        lines.append("wrapped / bare, per round: calls/s, CPU per call")
        lines += [f"{n:>5} {rate:>8.2f} {cpu:>8.2f}" for n, rate, cpu in per_round]
        rates, cpus = [r for _, r, _ in per_round], [c for _, _, c in per_round]
        lines.append(f"median {statistics.median(rates):>7.2f} {statistics.median(cpus):>8.2f}")
    return "\n".join(lines)


def to_json(samples: list[Sample]) -> str:
    return json.dumps([s.__dict__ for s in samples], indent=2)


# The server process: `python -m points_cli.bench.wrapper MODE` prints its port, serves until
# SIGTERM, then prints how many calls reached the handler.


async def _serve(mode: str) -> None:
    handled = 0
    response = health_pb2.HealthCheckResponse()

    async def check(request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        nonlocal handled
        handled += 1
        return response

    def register(server: grpc.aio.Server) -> None:
        method = grpc.unary_unary_rpc_method_handler(
            check, health_pb2.HealthCheckRequest.FromString, health_pb2.HealthCheckResponse.SerializeToString
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Check": method}),))

    if mode == "bare":
        server = grpc.aio.server()
        register(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
    else:
        configure_logging("info", json=True)
        settings = PlatformSettings(host="127.0.0.1", port=0, tokens_json=json.dumps({"app": os.environ[TOKEN_ENV]}))
        spec = ServiceSpec(
            full_name=SERVICE, error_domain="points.bench", policy={"Check": allow("app", "admin")},
            register=register, user_scoped={"Check": "service"},
        )
        running = await create_server(settings, spec)
        await running.set_serving(True)
        server, port = running.server, running.port
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)
    print(handled, flush=True)


if __name__ == "__main__":
    run_process(_serve(sys.argv[1]))
