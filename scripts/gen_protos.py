"""Regenerate the Python protobuf/gRPC code (with mypy stubs) for proto/ into libs/.

Usage: python scripts/gen_protos.py [--out DIR]

Everything under DIR/points is generated: it is deleted and rebuilt, so the output is a pure,
deterministic function of proto/ and the pinned tool versions. tests/contract/test_protos.py
regenerates into a temporary directory and fails when the committed copy has drifted.
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
GENERATED_PACKAGE = "points"


def _plugin(name: str) -> Path:
    """Return a protoc plugin installed next to the running interpreter (same venv)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"missing protoc plugin {path}; install mypy-protobuf in this environment")
    return path


def generate(out_dir: Path) -> None:
    """Delete DIR/points and regenerate it from every .proto under proto/."""
    out_dir = out_dir.resolve()
    package_dir = out_dir / GENERATED_PACKAGE
    if package_dir.exists():
        shutil.rmtree(package_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    if importlib.util.find_spec("grpc_tools") is None:
        raise SystemExit("grpcio-tools is not installed; install the codegen extra: pip install -e '.[codegen]'")
    bundled_include = importlib.resources.files("grpc_tools") / "_proto"

    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        str(PROTO_ROOT),
        "-I",
        str(bundled_include),
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    # Relative proto paths keep the generated descriptors independent of the checkout location.
    subprocess.run(command, cwd=PROTO_ROOT, check=True)

    # protoc writes namespace directories; make each one a regular package.
    for directory in sorted({package_dir, *(p for p in package_dir.rglob("*") if p.is_dir())}):
        (directory / "__init__.py").write_text("")
    (package_dir / "py.typed").write_text("")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "libs",
        help="output directory; DIR/points is replaced (default: libs)",
    )
    args = parser.parse_args(argv)
    generate(args.out)


if __name__ == "__main__":
    main()
