"""mypy --strict (pyproject [tool.mypy]) is clean over the shared platform library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_platform_library_type_checks_strictly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "libs/points_platform"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
