"""`python -m points_console serve|add-operator`: the console process and its operator accounts.

serve reads its configuration from POINTS_CONSOLE_* environment variables (points_console.config,
docs/configuration.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
from pathlib import Path

SECRET_FILE = "console-secret"
OPERATORS_FILE = "operators.json"


def session_secret(state_dir: Path) -> str:
    """The cookie-signing key: made once per state directory (mode 0600), so sessions survive restarts."""
    path = state_dir / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def serve() -> None:
    import uvicorn

    from points_console.app import create_app
    from points_console.config import ConsoleSettings, url_list
    from points_console.gateway import Gateway, Targets
    from points_console.metrics import MetricsSources

    settings = ConsoleSettings()
    state_dir = Path(settings.state_dir)
    admin_token = json.loads((state_dir / "credentials.json").read_text())["admin"]
    targets = Targets(settings.wallet_target, settings.earning_target, settings.catalog_target,
                      settings.redemption_target)
    sources = MetricsSources(url_list(settings.earning_metrics_urls), url_list(settings.redemption_metrics_urls))
    app = create_app(lambda: Gateway(targets, admin_token), state_dir / OPERATORS_FILE, session_secret(state_dir),
                     metrics=sources, sample_seconds=settings.metrics_sample_seconds)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m points_console")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the console (configured by the environment)")
    add = commands.add_parser("add-operator", help="create or replace an operator account")
    add.add_argument("--state-dir", type=Path, required=True)
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve()
        return 0
    from points_console.operators import add_operator

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    try:
        add_operator(args.state_dir / OPERATORS_FILE, args.name, password)
    except ValueError as error:
        print(f"add-operator: {error}", file=sys.stderr)
        return 2
    print(f"operator {args.name} saved in {args.state_dir / OPERATORS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
