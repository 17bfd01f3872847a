"""Architecture: services share only libs/ and the contracts; every RPC has a call policy."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(REPO / ".importlinter")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", ["wallet", "catalog", "earning", "redemption"])
def test_every_rpc_has_a_policy(service: str) -> None:
    api = importlib.import_module(f"{service}.api")
    pb2 = importlib.import_module(f"points.{service}.v1.{service}_pb2")
    descriptor = pb2.DESCRIPTOR.services_by_name[api.FULL_NAME.rsplit(".", 1)[1]]
    assert {m.name for m in descriptor.methods} == set(api.POLICY)
