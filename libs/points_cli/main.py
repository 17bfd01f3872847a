"""The `points` command: `up` runs the suite, `serve` runs one service, `migrate` migrates."""

from __future__ import annotations

import argparse
import os
import runpy
import subprocess
import sys
from pathlib import Path

from points_cli.suite import DEFAULT_PORTS, SERVICES, SuiteConfig, run_up


def _up(args: argparse.Namespace) -> int:
    ports = {service: getattr(args, f"{service}_port") for service in SERVICES}
    metrics = {service: args.metrics_base_port + i + 1 for i, service in enumerate(SERVICES)}
    cfg = SuiteConfig(
        state_dir=Path(args.state_dir),
        database_url=args.database_url or "",
        host=args.host,
        ports=ports,
        metrics_ports=metrics,
        ready_timeout=args.ready_timeout,
    )
    return run_up(cfg)


def _serve(args: argparse.Namespace) -> int:
    sys.argv = [args.service]
    runpy.run_module(args.service, run_name="__main__", alter_sys=True)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Migrate each service's database; URLs come from POINTS_<SERVICE>_DATABASE_URL."""
    failed = 0
    for service in args.services or SERVICES:
        result = subprocess.run([sys.executable, "-m", service, "--migrate-only"], env=os.environ, check=False)
        failed |= result.returncode
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="points", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run PostgreSQL and the four services until Ctrl-C")
    up.add_argument("--state-dir", default=os.environ.get("POINTS_STATE_DIR", ".points"))
    up.add_argument(
        "--database-url",
        default=os.environ.get("POINTS_DATABASE_URL", ""),
        help="use this PostgreSQL server instead of the embedded one (one database per service)",
    )
    up.add_argument("--host", default="127.0.0.1")
    for service in SERVICES:
        up.add_argument(f"--{service}-port", type=int, default=DEFAULT_PORTS[service])
    up.add_argument("--metrics-base-port", type=int, default=9100, help="metrics on base+1 .. base+4")
    up.add_argument("--ready-timeout", type=float, default=60.0)
    up.set_defaults(func=_up)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="migrate service databases to head")
    migrate.add_argument("services", nargs="*", help=f"any of {', '.join(SERVICES)} (default all)")
    migrate.set_defaults(func=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
