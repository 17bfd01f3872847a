"""ruff (pyproject [tool.ruff.lint]: pyflakes, pycodestyle, import order, bugbear, pyupgrade, naming,
simplify, ruff's own rules, blind except) is clean over everything but generated code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "check", "libs", "services", "tests", "scripts"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
