"""One `points up` with its console for every console test module, and one headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.support import OPERATOR, PASSWORD, console_answers
from tests.console.webdriver import Browser, ensure_chromium
from tests.e2e.suite_process import SuiteProcess


@pytest.fixture(scope="package")
def suite() -> Iterator[SuiteProcess]:
    # Outside pytest's tmp dir: another pytest run resets that to 0700, cutting the embedded
    # cluster's own user off from its data directory (see tests/conftest.py).
    root = Path(tempfile.mkdtemp(prefix="points-test-"))
    running = SuiteProcess(root / "state")
    try:
        running.start()
        subprocess.run(
            [sys.executable, "-m", "points_console", "add-operator", "--state-dir", str(running.state_dir),
             OPERATOR, "--password-stdin"],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )
        deadline = time.monotonic() + 60
        while not console_answers(running.console_port):
            assert time.monotonic() < deadline, "the console did not answer"
            time.sleep(0.05)  # pacing between polls of the console's sign-in page
        yield running
    finally:
        running.kill_all()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    ensure_chromium()
    running = Browser()
    yield running
    running.quit()
