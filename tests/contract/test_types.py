"""mypy --strict (pyproject [tool.mypy]) is clean over the platform library, the CLI, the four services and tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


STRICT = [
    "libs/points_platform",
    "libs/points_cli",
    "services/wallet/wallet",
    "services/catalog/catalog",
    "services/earning/earning",
    "services/redemption/redemption",
    "tests",
]


def test_strict_type_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *STRICT],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
