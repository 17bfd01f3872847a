"""A service process wired for events the way docs/events.md ("Wiring a service") says, with no
RPCs of its own: `python -m tests.events.service_process MARKER`, settings from POINTS_*.
On stop it writes to MARKER whether its relay was still running after `relays.close()`."""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa

from points_platform.clock import SystemClock
from points_platform.config import PlatformSettings
from points_platform.db import create_engine
from points_platform.outbox import Outbox, outbox_table
from points_platform.relay import start_relays
from points_platform.server import ServiceSpec, run_process, run_service

SERVICE = "wallet"
PARTITIONS = 4


async def serve(settings: PlatformSettings, marker: Path) -> None:
    engine = create_engine(settings.database_url)
    outbox = Outbox(outbox_table(sa.MetaData()), SERVICE, PARTITIONS, SystemClock())
    spec = ServiceSpec("points.test.v1.Nothing", "points.test", {}, lambda _server: None)

    async def record() -> None:
        marker.write_text("running" if relays.is_running else "closed")

    relays = start_relays(engine, settings, outbox, idle_seconds=0.01)
    await run_service(settings, spec, engine, on_stop=[relays.close, record])


if __name__ == "__main__":
    run_process(serve(PlatformSettings(), Path(sys.argv[1])))
