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


@pytest.mark.parametrize("service", ["wallet", "catalog", "earning", "redemption"])
def test_user_scoped_methods_exist_and_name_a_request_field(service: str) -> None:
    """A misspelled method would silently go unscoped; a misspelled field fails every app call."""
    api = importlib.import_module(f"{service}.api")
    pb2 = importlib.import_module(f"points.{service}.v1.{service}_pb2")
    descriptor = pb2.DESCRIPTOR.services_by_name[api.FULL_NAME.rsplit(".", 1)[1]]
    methods = {m.name: m for m in descriptor.methods}
    for method, field in api.USER_SCOPED.items():
        assert method in methods, method
        assert "app" in api.POLICY[method], f"{method}: scoped for app, which may not call it"
        assert not methods[method].client_streaming, f"{method}: a stream's messages are not checked"
        if field:
            assert field in methods[method].input_type.fields_by_name, (method, field)
