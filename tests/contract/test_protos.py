"""Contract checks: the protos lint clean, the committed stubs are fresh, and every RPC exists."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = REPO_ROOT / "libs" / "points"

# Every RPC a service implementer or client relies on; a service may have more, never fewer.
REQUIRED_RPCS: dict[str, tuple[str, str, set[str]]] = {
    "wallet": (
        "points.wallet.v1.wallet_pb2",
        "WalletService",
        {
            "GetBalance",
            "Credit",
            "CreditBatch",
            "Debit",
            "Reserve",
            "CommitHold",
            "ReleaseHold",
            "GetHold",
            "ListTransactions",
            "SendGift",
            "RequestPayout",
            "CompletePayout",
        },
    ),
    "catalog": (
        "points.catalog.v1.catalog_pb2",
        "CatalogService",
        {
            "CreateItem",
            "UpdateItem",
            "GetItem",
            "ListItems",
            "Quote",
            "ReserveStock",
            "CommitReservation",
            "ReleaseReservation",
            "GetReservation",
            "CreateCampaign",
            "ListCampaigns",
        },
    ),
    "earning": (
        "points.earning.v1.earning_pb2",
        "EarningService",
        {
            "RecordActivity",
            "RecordActivities",
            "StreamActivities",
            "GetRules",
            "UpdateRules",
            "CreateChallenge",
            "JoinChallenge",
            "ListChallenges",
            "GetDailySummary",
            "ListHeldEarnings",
            "ResolveHeldEarning",
        },
    ),
    "redemption": (
        "points.redemption.v1.redemption_pb2",
        "RedemptionService",
        {
            "Redeem",
            "GetRedemption",
            "ListRedemptions",
            "RefundRedemption",
            "ListEntitlements",
            "PrepareRaffleDraw",
            "DrawRaffle",
            "GetRaffleDraw",
        },
    ),
}


def _tree(root: Path) -> dict[str, bytes]:
    """Map each file under root (relative posix path) to its bytes, skipping bytecode caches."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_buf_lint_is_clean() -> None:
    buf = Path(sys.executable).parent / "buf"
    result = subprocess.run(
        [str(buf), "lint"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}\n{result.stderr}"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    fresh = _tree(tmp_path / "points")
    committed = _tree(COMMITTED)
    hint = "generated code is stale: run `python scripts/gen_protos.py`"
    assert sorted(committed) == sorted(fresh), hint
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"{hint} (differs: {stale})"


@pytest.mark.parametrize("service", sorted(REQUIRED_RPCS))
def test_service_has_required_rpcs(service: str) -> None:
    module_name, service_name, required = REQUIRED_RPCS[service]
    module = importlib.import_module(module_name)
    importlib.import_module(module_name.removesuffix("_pb2") + "_pb2_grpc")
    descriptor = module.DESCRIPTOR.services_by_name[service_name]
    missing = required - set(descriptor.methods_by_name)
    assert not missing, f"{service_name} lacks RPCs: {sorted(missing)}"


def test_stream_activities_is_client_streaming() -> None:
    from points.earning.v1 import earning_pb2

    method = earning_pb2.DESCRIPTOR.services_by_name["EarningService"].methods_by_name[
        "StreamActivities"
    ]
    assert method.client_streaming and not method.server_streaming


@pytest.mark.parametrize("name", ["common", "wallet", "catalog", "earning", "redemption"])
def test_language_options_name_the_generated_code(name: str) -> None:
    """Every file sets the names other languages' generators use (no managed mode needed), and
    Go's import path is the module clients/go/go.mod declares."""
    options = importlib.import_module(f"points.{name}.v1.{name}_pb2").DESCRIPTOR.GetOptions()
    title = name.capitalize()
    go_mod = (REPO_ROOT / "clients" / "go" / "go.mod").read_text()
    [module] = re.findall(r"^module (\S+)$", go_mod, re.MULTILINE)
    assert options.go_package == f"{module}/points/{name}/v1;{name}v1"
    assert options.java_multiple_files and options.java_package == f"points.{name}.v1"
    assert options.java_outer_classname == f"{title}Proto"
    assert options.csharp_namespace == f"Points.{title}.V1"
    assert options.php_namespace == f"Points\\{title}\\V1"
    assert options.ruby_package == f"Points::{title}::V1"
