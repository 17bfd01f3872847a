"""Health/Check from `h2load` (Debian's nghttp2-client), a C HTTP/2 load generator: the check that
our Python generator is not what a benchmark measures. It sends one fixed gRPC request, an empty
HealthCheckRequest, so it reaches a rate our generator should come close to on the same server.
`drive` sends any one fixed unary request (`points bench wrapper`, bench/wrapper.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_RATE = re.compile(r"finished in [\d.]+s, ([\d.]+) req/s")
_DONE = re.compile(r"requests: \d+ total, (\d+) started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def available() -> bool:
    return shutil.which("h2load") is not None


@dataclass(frozen=True)
class Run:
    """One h2load run's summary."""

    rate: float  # requests answered per second
    succeeded: int  # HTTP 200s: for gRPC, answered calls whatever their grpc-status (see bench/wrapper.py)
    started: int


def parse_run(output: str) -> Run:
    """h2load's summary; a run with failures is not a measurement."""
    rate, done = _RATE.search(output), _DONE.search(output)
    if rate is None or done is None:
        raise RuntimeError(f"unexpected h2load output:\n{output}")
    if int(done.group(3)) or int(done.group(4)):
        raise RuntimeError(f"h2load saw failed requests:\n{output}")
    return Run(float(rate.group(1)), int(done.group(2)), int(done.group(1)))


def parse(output: str) -> float:
    """Requests per second from h2load's summary; a run with failures is not a baseline."""
    return parse_run(output).rate


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (not compressed): what h2load sends as the request body."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def drive(
    address: str, path: str, *, duration: float, concurrency: int, connections: int = 4, body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
) -> Run:
    """Unary calls of `path` (one gRPC message `body`, these `headers`) for `duration` seconds
    with `concurrency` in flight over `connections` connections, from one h2load thread."""
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.bin"
        request.write_bytes(grpc_frame(body))
        extra = [arg for name, value in headers for arg in ("-H", f"{name}: {value}")]
        result = subprocess.run(
            [
                "h2load", "-D", str(max(1, round(duration))), "-c", str(connections),
                "-m", str(max(1, concurrency // connections)), "-t", "1", "-d", str(request),
                "-H", "content-type: application/grpc", "-H", "te: trailers", *extra,
                f"http://{address}{path}",
            ],
            capture_output=True, text=True, check=False, timeout=duration + 60,
        )
    return parse_run(result.stdout + result.stderr)


def health_check_rate(address: str, *, duration: float, concurrency: int, connections: int = 4) -> float:
    """Health/Check calls per second h2load completes on `address` with `concurrency` in flight
    (an empty HealthCheckRequest)."""
    return drive(
        address, HEALTH_CHECK, duration=duration, concurrency=concurrency, connections=connections
    ).rate
