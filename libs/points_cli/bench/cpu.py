"""CPU seconds spent by the suite's processes, read from /proc (Linux), so a benchmark can say
what one call costs each process: with everything on two cores, that cost is the limit.

`points up` writes the pids of its services to `<state dir>/pids.json`; PostgreSQL's are its
postmaster (from postmaster.pid) and every backend and worker under it. Where /proc or the
files are missing the accounting is simply absent.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

PIDS_FILE = "pids.json"
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def write_pids(state_dir: Path, pids: dict[str, list[int]]) -> None:
    """Service name -> the pids of its worker processes; replaced whole (a restart rewrites it
    while readers may look)."""
    partial = state_dir / (PIDS_FILE + ".tmp")
    partial.write_text(json.dumps(pids))
    partial.replace(state_dir / PIDS_FILE)


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own user + system CPU seconds, those of its exited and reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS, (int(fields[13]) + int(fields[14])) / _TICKS


def process_seconds(pid: int) -> float | None:
    """User + system CPU seconds one live process has spent (None if /proc cannot say)."""
    stat = _stat(pid)
    return stat[1] if stat is not None else None


class SuiteCpu:
    """Snapshots of CPU seconds per suite process group ("wallet", ..., "postgres")."""

    def __init__(self, state_dir: Path) -> None:
        self._roots: dict[str, list[int]] = {}
        try:
            listed = json.loads((state_dir / PIDS_FILE).read_text())
            self._roots = {name: [int(pid) for pid in pids] for name, pids in listed.items()}
        except (OSError, ValueError, TypeError):
            pass
        with contextlib.suppress(OSError, ValueError, IndexError):
            self._roots["postgres"] = [int((state_dir / "pg" / "postmaster.pid").read_text().split()[0])]

    @property
    def available(self) -> bool:
        return bool(self._roots) and Path("/proc/self/stat").exists()

    def snapshot(self) -> dict[str, float]:
        if not self.available:
            return {}
        stats: dict[int, tuple[int, float, float]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (stat := _stat(int(entry))) is not None:
                stats[int(entry)] = stat
        totals: dict[str, float] = {}
        for name, roots in self._roots.items():
            live = [root for root in roots if root in stats]
            if live:
                # Each root, its live children and the ones it reaped: PostgreSQL's backends,
                # including connections closed during the run (a service has no children that matter).
                totals[name] = sum(
                    stats[r][1] + stats[r][2] + sum(cpu for ppid, cpu, _ in stats.values() if ppid == r) for r in live
                )
        return totals


def per_call_ms(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    """Milliseconds of CPU per call for each process group that did measurable work."""
    if calls <= 0:
        return {}
    spent = {name: after[name] - before.get(name, after[name]) for name in after}
    return {name: round(1000 * seconds / calls, 3) for name, seconds in spent.items() if seconds >= 0.05}


def in_health_checks(cost_ms: dict[str, float], health_ms: float | None) -> dict[str, float]:
    """Each process's CPU per call in units of one Health/Check's CPU on the measured server (same
    run): a unit that moves with the machine's speed as the calls do, so runs compare."""
    if not health_ms or health_ms <= 0:
        return {}
    return {name: round(ms / health_ms, 2) for name, ms in cost_ms.items()}
