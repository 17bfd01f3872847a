"""`points up`: PostgreSQL (embedded unless a URL is given) plus the four services as processes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from points_cli.bench.cpu import write_pids
from points_cli.supervision import CrashHistory, GiveUp, Restart, RestartPolicy, describe_exit
from points_platform.config import CALLERS
from points_platform.db import database_url
from points_platform.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from points_platform.logs import configure_logging
from points_platform.tokens import token_weakness

log = structlog.get_logger("points.up")

SERVICES = ("wallet", "catalog", "earning", "redemption")
DEFAULT_PORTS = {"wallet": 50051, "catalog": 50052, "earning": 50053, "redemption": 50054}
DEFAULT_WORKERS = {"wallet": 1, "catalog": 1, "earning": 1, "redemption": 1}
FULL_NAMES = {
    "wallet": "points.wallet.v1.WalletService",
    "catalog": "points.catalog.v1.CatalogService",
    "earning": "points.earning.v1.EarningService",
    "redemption": "points.redemption.v1.RedemptionService",
}


class SuiteError(RuntimeError):
    """Something stops the suite from starting; printed as one line."""


@dataclass(frozen=True)
class SuiteConfig:
    state_dir: Path
    database_url: str  # a server URL (any database part is ignored); empty = embedded
    host: str
    ports: dict[str, int]
    metrics_ports: dict[str, int]
    ready_timeout: float = 60.0
    # Processes per service sharing its port (SO_REUSEPORT): one Python process uses one core at
    # most (the GIL). Worker k > 0 serves metrics on metrics port + 10k. One each by default: on
    # two cores a second wallet raised plain credits but cost the hot account (docs/benchmarks.md).
    workers: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKERS))
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    console_port: int = 0  # the operator console's port (points_console); 0 = do not start it

    def worker_metrics_port(self, service: str, worker: int) -> int:
        return self.metrics_ports[service] + 10 * worker


def load_credentials(state_dir: Path) -> dict[str, str]:
    """Caller -> bearer token, generated once and kept across restarts; a caller added since (e.g.
    fulfilment), or one whose token the services would refuse, gets a new token without changing
    the others'."""
    path = state_dir / "credentials.json"
    tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    unusable = [caller for caller in CALLERS if token_weakness(tokens.get(caller, "")) is not None]
    if not unusable:
        return tokens
    tokens |= {caller: secrets.token_urlsafe(32) for caller in unusable}
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens, indent=2) + "\n")
    path.chmod(0o600)
    return tokens


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def service_env(cfg: SuiteConfig, service: str, server_url: str, worker: int = 0) -> dict[str, str]:
    prefix = f"POINTS_{service.upper()}_"
    env = dict(os.environ)
    env.update(
        {
            prefix + "DATABASE_URL": database_url(server_url, f"points_{service}"),
            prefix + "HOST": cfg.host,
            prefix + "PORT": str(cfg.ports[service]),
            prefix + "METRICS_PORT": str(cfg.worker_metrics_port(service, worker)),
            prefix + "REUSE_PORT": "true" if cfg.workers.get(service, 1) > 1 else "false",
            prefix + "TOKENS_FILE": str((cfg.state_dir / "credentials.json").resolve()),
            prefix + "SHUTDOWN_GRACE_SECONDS": "3",
        }
    )
    for peer in ("wallet", "catalog"):
        env[f"{prefix}{peer.upper()}_TARGET"] = f"{cfg.host}:{cfg.ports[peer]}"
    return env


def wait_serving(host: str, port: int, deadline: float, proc: subprocess.Popen[bytes]) -> bool:
    """Until health says SERVING; False at the deadline or as soon as `proc` has exited."""
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        # types-grpcio-health-checking declares no methods on HealthStub.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    return False


def metrics_say_serving(host: str, port: int) -> bool:
    """The process behind this metrics port reports SERVING (`points_serving 1.0`)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=1.0) as reply:
            return b"\npoints_serving 1.0\n" in reply.read()
    except OSError:
        return False


def worker_name(service: str, worker: int) -> str:
    """"wallet" for a service's first process, "wallet#2" for its second, ..."""
    return service if worker == 0 else f"{service}#{worker + 1}"


RESTARTS_FILE = "restarts.json"


class Suite:
    """Owns PostgreSQL (if embedded) and the services' processes, and restarts those that die."""

    def __init__(self, cfg: SuiteConfig) -> None:
        self.cfg = cfg
        self.pg: EmbeddedPostgres | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.server_url = ""
        self.crashes: dict[str, CrashHistory] = {}
        self.pending: dict[str, Restart] = {}  # worker name -> when it starts again
        self.restarts: dict[str, int] = {}  # worker name -> restarts since `points up` began
        self.console: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[str, str]:
        cfg = self.cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        tokens = load_credentials(cfg.state_dir)
        for service in SERVICES:
            metrics = [cfg.worker_metrics_port(service, w) for w in range(cfg.workers.get(service, 1))]
            for kind, port in [("gRPC", cfg.ports[service])] + [("metrics", p) for p in metrics]:
                if not port_is_free(cfg.host, port):
                    raise SuiteError(f"port {port} ({service} {kind}) on {cfg.host} is already in use")
        if cfg.console_port and not port_is_free(cfg.host, cfg.console_port):
            raise SuiteError(f"port {cfg.console_port} (console) on {cfg.host} is already in use")
        if cfg.database_url:
            server_url = database_url(cfg.database_url)
        else:
            self.pg = EmbeddedPostgres(cfg.state_dir / "pg")
            try:
                self.pg.start()
            except EmbeddedPostgresError as exc:
                raise SuiteError(str(exc)) from None
            server_url = self.pg.url
        self.server_url = server_url
        self._write_restarts()
        logs = cfg.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        for service in SERVICES:
            self._spawn(service, 0, server_url, logs)
        deadline = time.monotonic() + cfg.ready_timeout
        for service in SERVICES:
            proc = self.procs[service]
            if not wait_serving(cfg.host, cfg.ports[service], deadline, proc) or proc.poll() is not None:
                # A crash while starting is a configuration or environment problem (a port, a
                # token, the database): restarting would repeat it, so it stops the start.
                what = f"exited ({describe_exit(proc.returncode)})" if proc.poll() is not None else (
                    f"did not become SERVING within {cfg.ready_timeout:.0f}s")
                raise SuiteError(f"{service} {what} (see {logs / (service + '.log')})")
        # Further workers start once the first has migrated the database. They share the gRPC port
        # (a health check may reach any of them), so each is ready when its own metrics say SERVING.
        extra = [(s, w) for s in SERVICES for w in range(1, cfg.workers.get(s, 1))]
        for service, worker in extra:
            self._spawn(service, worker, server_url, logs)
        for service, worker in extra:
            name = worker_name(service, worker)
            port = cfg.worker_metrics_port(service, worker)
            serving = False
            while self.procs[name].poll() is None and time.monotonic() < deadline:
                if serving := metrics_say_serving(cfg.host, port):
                    break
                time.sleep(0.2)
            if not serving:
                raise SuiteError(
                    f"{name} did not become SERVING within {cfg.ready_timeout:.0f}s (see {logs / (service + '.log')})"
                )
        self._write_pids()
        if cfg.console_port:
            self._spawn_console(logs)
        return tokens

    def _spawn_console(self, logs: Path) -> None:
        """The console talks to the services over gRPC only; it gets their addresses, not the database."""
        cfg = self.cfg
        env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
        env.update(
            POINTS_CONSOLE_STATE_DIR=str(cfg.state_dir),
            POINTS_CONSOLE_HOST=cfg.host,
            POINTS_CONSOLE_PORT=str(cfg.console_port),
            **{f"POINTS_CONSOLE_{s.upper()}_TARGET": f"{cfg.host}:{cfg.ports[s]}" for s in SERVICES},
            # The overview's charts read these services' Prometheus endpoints (every worker's).
            **{f"POINTS_CONSOLE_{s.upper()}_METRICS_URLS": ",".join(
                f"http://{cfg.host}:{cfg.worker_metrics_port(s, w)}/metrics" for w in range(cfg.workers.get(s, 1)))
               for s in ("earning", "redemption")},
        )
        with (logs / "console.log").open("ab") as log_file:
            self.console = subprocess.Popen(
                [sys.executable, "-m", "points_console", "serve"],
                env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def _write_pids(self) -> None:
        pids: dict[str, list[int]] = {}
        for name, proc in self.procs.items():
            pids.setdefault(name.split("#")[0], []).append(proc.pid)
        write_pids(self.cfg.state_dir, pids)

    def _write_restarts(self) -> None:
        partial = self.cfg.state_dir / (RESTARTS_FILE + ".tmp")
        partial.write_text(json.dumps(self.restarts) + "\n")
        partial.replace(self.cfg.state_dir / RESTARTS_FILE)

    def _spawn(self, service: str, worker: int, server_url: str, logs: Path) -> None:
        with (logs / f"{service}.log").open("ab") as log_file:
            # A session of its own: Ctrl-C reaches `points up`, which then stops children in order.
            self.procs[worker_name(service, worker)] = subprocess.Popen(
                [sys.executable, "-m", service],
                env=service_env(self.cfg, service, server_url, worker),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def supervise(self, now: float) -> str | None:
        """One look at the workers: schedule a restart for each that died, start those that are
        due. Returns why the suite must stop (a crash loop), else None."""
        for name, proc in self.procs.items():
            if name in self.pending or proc.poll() is None:
                continue
            decision = self.crashes.setdefault(name, CrashHistory(self.cfg.restart_policy)).crashed(now)
            how = describe_exit(proc.returncode)
            if isinstance(decision, GiveUp):
                log.error("service_crash_loop", worker=name, exit=how, crashes=decision.crashes,
                          window_seconds=decision.window_seconds)
                return (f"{name} exited {decision.crashes} times within {decision.window_seconds:.0f}s "
                        f"(last: {how}); stopping the suite")
            self.pending[name] = decision
            log.warning("service_exited", worker=name, pid=proc.pid, exit=how, exit_code=proc.returncode,
                        attempt=decision.attempt, restart_in_seconds=round(decision.at - now, 3))
        for name, restart in list(self.pending.items()):
            if restart.at <= now:
                del self.pending[name]
                service, _, number = name.partition("#")  # worker_name(): "wallet", "wallet#2"
                self._spawn(service, int(number or 1) - 1, self.server_url, self.cfg.state_dir / "logs")
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._write_restarts()
                self._write_pids()
                log.info("service_restarted", worker=name, pid=self.procs[name].pid, attempt=restart.attempt,
                         restarts=self.restarts[name])
        return None

    def stop(self) -> None:
        """Within ~10 s: services drain (3 s grace), stragglers are killed at 4 s, then PostgreSQL."""
        everything = [*self.procs.values(), *([self.console] if self.console is not None else [])]
        for proc in everything:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 4
        for proc in everything:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.pg is not None:
            self.pg.stop(timeout=4)


def banner(cfg: SuiteConfig) -> str:
    """What runs where; names the credentials file, never a token (the banner ends up in logs)."""
    lines = ["Points is up.", ""]
    for service in SERVICES:
        workers = cfg.workers.get(service, 1)
        metrics = ", ".join(
            f"http://{cfg.host}:{cfg.worker_metrics_port(service, w)}/metrics" for w in range(workers)
        )
        shared = f" ({workers} processes)" if workers > 1 else ""
        lines.append(
            f"  {service:<11} {cfg.host}:{cfg.ports[service]}{shared}   {FULL_NAMES[service]}   metrics {metrics}"
        )
    creds = (cfg.state_dir / "credentials.json").resolve()
    lines += [
        "",
        f"  credentials (caller -> bearer token): {creds}",
        f"  logs: {(cfg.state_dir / 'logs').resolve()}",
        *([f"  operator console: http://{cfg.host}:{cfg.console_port}/ "
           f"(add an operator: python -m points_console add-operator --state-dir {cfg.state_dir} NAME)"]
          if cfg.console_port else []),
        "",
        "Try:",
        f"  TOKEN=$(python3 -c 'import json;print(json.load(open(\"{creds}\"))[\"app\"])')",
        "  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -H 'x-points-user: alice' \\",
        f"    -d '{{\"user_id\": \"alice\"}}' {cfg.host}:{cfg.ports['wallet']}"
        " points.wallet.v1.WalletService/GetBalance",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def run_up(cfg: SuiteConfig, *, seed_demo: bool = False) -> int:
    """Start, print, wait for a signal or a crash, stop. Returns the exit code."""
    configure_logging("info")
    suite = Suite(cfg)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        tokens = suite.start()
    except SuiteError as exc:
        print(f"points up: {exc}", file=sys.stderr)
        suite.stop()
        return 1
    if seed_demo:
        import asyncio

        from points_cli.seed.runner import run_seeds
        from points_cli.targets import SuiteTargets

        try:
            seeded = asyncio.run(run_seeds(SuiteTargets(cfg.host, cfg.ports, tokens)))
        except Exception as exc:  # noqa: BLE001 - report in one line, then stop cleanly
            print(f"points up: demo seed failed: {exc!r}", file=sys.stderr)
            suite.stop()
            return 1
        print("demo data seeded: " + (", ".join(seeded) or "nothing yet"), flush=True)
    print(banner(cfg), flush=True)
    crash_loop = None
    while not stopping:
        crash_loop = suite.supervise(time.monotonic())
        if crash_loop:
            print(f"points up: {crash_loop}", file=sys.stderr)
            break
        time.sleep(0.2)  # pacing of the watch over the children
    suite.stop()
    print("points up: stopped", flush=True)
    return 1 if crash_loop else 0
