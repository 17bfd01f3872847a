"""Run `points up` as a subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # psutil ships no type hints; types-psutil is not a dev dependency

from points_platform.embedded_pg import free_port

SERVICES = ("wallet", "catalog", "earning", "redemption")


@dataclass
class SuiteProcess:
    state_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: {s: free_port() for s in SERVICES})
    metrics_base: int = 0  # chosen by start(): service i's first worker on base + i + 1
    console_port: int = field(default_factory=free_port)
    nats_port: int = field(default_factory=free_port)  # the embedded NATS server's (unless --nats-url)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    def start(self, timeout: float = 90.0) -> None:
        args = [sys.executable, "-m", "points_cli.main", "up", "--state-dir", str(self.state_dir)]
        for service, port in self.ports.items():
            args += [f"--{service}-port", str(port)]
        self.metrics_base = self._metrics_base()
        args += ["--metrics-base-port", str(self.metrics_base), "--console-port", str(self.console_port)]
        args += ["--nats-port", str(self.nats_port)]
        args += self.extra_args
        env = {k: v for k, v in os.environ.items() if k not in ("POINTS_DATABASE_URL", "POINTS_NATS_URL")}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("points up exited early:\n" + "".join(self.output) + self._logs())
            self.output.append(line)
            if line.startswith("Ctrl-C stops everything"):
                return
        raise AssertionError("points up was not ready in time:\n" + "".join(self.output) + self._logs())

    def metrics_port(self, service: str, worker: int = 0) -> int:
        """Where this worker of `service` serves /metrics (`points up`'s numbering)."""
        return self.metrics_base + SERVICES.index(service) + 1 + 10 * worker

    def _metrics_base(self) -> int:
        # Four consecutive free ports above the base (and +11, a second wallet worker's) are likely;
        # verify rather than hope.
        while True:
            base = free_port()
            # Free now, and none of the ports chosen for the suite's other listeners (still unbound).
            chosen = {*self.ports.values(), self.console_port, self.nats_port}
            if base < 60000 and all(_free(base + i) and base + i not in chosen for i in (1, 2, 3, 4, 11)):
                return base

    def _logs(self) -> str:
        parts = []
        for log in sorted((self.state_dir / "logs").glob("*.log")):
            parts.append(f"\n--- {log.name} ---\n" + log.read_text()[-3000:])
        return "".join(parts)

    @property
    def tokens(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.state_dir / "credentials.json").read_text())
        return data

    def pids(self) -> list[int]:
        """Every process of the suite: points up, its children, and the PostgreSQL postmaster."""
        assert self.proc is not None
        found = [self.proc.pid] + [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        postmaster = self.state_dir / "pg" / "postmaster.pid"
        if postmaster.exists():
            found.append(int(postmaster.read_text().splitlines()[0]))
        return found

    # points up stops within ~11 s (Suite.stop), plus a loaded machine's slack.
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.stdout and not self.proc.stdout.closed:
                self.output.append(self.proc.stdout.read())
                self.proc.stdout.close()

    def kill_all(self) -> None:
        """Last-resort cleanup for a failed test."""
        if self.proc is None:
            return
        for pid in self.pids() if self.proc.poll() is None else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def describe(pid: int) -> str:
    """pid and command line, for a failure message."""
    try:
        return f"{pid}: {' '.join(psutil.Process(pid).cmdline())}"
    except psutil.NoSuchProcess:
        return f"{pid}: gone"
