"""Health/Check from `h2load` (Debian's nghttp2-client), a C HTTP/2 load generator: the check that
our Python generator is not what a benchmark measures. It sends one fixed gRPC request, an empty
HealthCheckRequest, so it reaches a rate our generator should come close to on the same server.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# A gRPC message frame: not compressed, length 0 (an empty HealthCheckRequest).
EMPTY_HEALTH_CHECK = b"\x00\x00\x00\x00\x00"
_RATE = re.compile(r"finished in [\d.]+s, ([\d.]+) req/s")
_DONE = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def available() -> bool:
    return shutil.which("h2load") is not None


def parse(output: str) -> float:
    """Requests per second from h2load's summary; a run with failures is not a baseline."""
    rate, done = _RATE.search(output), _DONE.search(output)
    if rate is None or done is None:
        raise RuntimeError(f"unexpected h2load output:\n{output}")
    if int(done.group(2)) or int(done.group(3)):
        raise RuntimeError(f"h2load saw failed requests:\n{output}")
    return float(rate.group(1))


def health_check_rate(address: str, *, duration: float, concurrency: int, connections: int = 4) -> float:
    """Health/Check calls per second h2load completes on `address` with `concurrency` in flight."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "health-check.bin"
        body.write_bytes(EMPTY_HEALTH_CHECK)
        result = subprocess.run(
            [
                "h2load", "-D", str(max(1, round(duration))), "-c", str(connections),
                "-m", str(max(1, concurrency // connections)), "-t", "1", "-d", str(body),
                "-H", "content-type: application/grpc", "-H", "te: trailers",
                f"http://{address}/grpc.health.v1.Health/Check",
            ],
            capture_output=True, text=True, check=False, timeout=duration + 60,
        )
    return parse(result.stdout + result.stderr)
