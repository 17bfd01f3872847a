"""The restart policy of `points up` (points_cli.supervision): pure, driven by explicit times."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from points_cli.suite import Suite, SuiteConfig
from points_cli.supervision import CrashHistory, GiveUp, Restart, RestartPolicy, describe_exit

POLICY = RestartPolicy(first_delay_seconds=0.5, max_delay_seconds=4.0, max_crashes=5, window_seconds=60.0)


def test_backoff_doubles_from_half_a_second_up_to_the_cap() -> None:
    history = CrashHistory(POLICY)
    decisions = [history.crashed(now) for now in (100.0, 101.0, 102.0, 103.0, 104.0)]
    assert decisions == [
        Restart(at=100.5, attempt=1),
        Restart(at=102.0, attempt=2),
        Restart(at=104.0, attempt=3),
        Restart(at=107.0, attempt=4),  # 4 s: the cap, not 8
        Restart(at=108.0, attempt=5),
    ]


def test_more_crashes_than_allowed_within_the_window_is_a_crash_loop() -> None:
    history = CrashHistory(POLICY)
    for now in range(5):
        assert isinstance(history.crashed(float(now)), Restart)
    assert history.crashed(59.0) == GiveUp(crashes=6, window_seconds=60.0)


def test_crashes_older_than_the_window_are_forgotten() -> None:
    history = CrashHistory(POLICY)
    for now in range(5):
        history.crashed(float(now))
    # The first crash (t=0) left the window at t=60: five in the window again, no loop, and the
    # delay follows the streak, not the total.
    assert history.crashed(60.0) == Restart(at=64.0, attempt=5)
    assert history.crashed(200.0) == Restart(at=200.5, attempt=1)


def test_workers_are_judged_separately() -> None:
    wallet, catalog = CrashHistory(POLICY), CrashHistory(POLICY)
    for now in range(5):
        wallet.crashed(float(now))
    assert catalog.crashed(5.0) == Restart(at=5.5, attempt=1)
    assert isinstance(wallet.crashed(5.0), GiveUp)


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-200) == "killed by signal 200"


def test_the_suite_stops_on_a_crash_loop_and_says_why(tmp_path: Path) -> None:
    services = ("wallet", "catalog", "earning", "redemption")
    cfg = SuiteConfig(
        tmp_path,
        "",
        "127.0.0.1",
        dict.fromkeys(services, 1),
        dict.fromkeys(services, 2),
        restart_policy=RestartPolicy(max_crashes=0),
    )
    suite = Suite(cfg)
    crashed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    crashed.wait()
    suite.procs["wallet#2"] = crashed
    assert suite.supervise(now=10.0) == "wallet#2 exited 1 times within 60s (last: exit code 3); stopping the suite"
