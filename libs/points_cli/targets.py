"""Where a running suite is and how to call it as a given caller: shared by bench, seed and demo."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from points_cli.suite import DEFAULT_PORTS
from points_platform.client import bearer


@dataclass
class SuiteTargets:
    """Addresses and tokens of a running suite (from `points up`'s state dir)."""

    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_state_dir(
        cls, state_dir: Path, host: str = "127.0.0.1", ports: dict[str, int] | None = None
    ) -> SuiteTargets:
        credentials = state_dir / "credentials.json"
        if not credentials.exists():
            raise SystemExit(f"no {credentials}: is `points up --state-dir {state_dir}` running?")
        return cls(host, dict(ports or DEFAULT_PORTS), json.loads(credentials.read_text()))

    def address(self, service: str) -> str:
        return f"{self.host}:{self.ports[service]}"


class CallerContext:
    """Channels (one per service, cached) and per-caller metadata."""

    def __init__(self, targets: SuiteTargets) -> None:
        self.targets = targets
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            # A local subchannel pool: this context's own TCP connection, not one shared by every
            # channel of the process (so a bench's connections spread over a service's workers).
            self._channels[service] = grpc.aio.insecure_channel(
                self.targets.address(service), options=[("grpc.use_local_subchannel_pool", 1)]
            )
        return self._channels[service]

    def metadata(self, caller: str) -> tuple[tuple[str, str], ...]:
        return bearer(self.targets.tokens[caller])

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
