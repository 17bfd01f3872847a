"""`python -m points_console serve|add-operator`: the console process and its operator accounts.

serve reads its configuration from the environment (docs/console.md):
  POINTS_CONSOLE_STATE_DIR     directory with credentials.json (the admin token), operators.json, console-secret
  POINTS_CONSOLE_HOST/PORT     where to listen (default 127.0.0.1:8080)
  POINTS_CONSOLE_{WALLET,EARNING,CATALOG,REDEMPTION}_TARGET   the services' gRPC addresses
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
    from points_console.gateway import Gateway, Targets

    state_dir = Path(os.environ["POINTS_CONSOLE_STATE_DIR"])
    admin_token = json.loads((state_dir / "credentials.json").read_text())["admin"]
    targets = Targets(**{s: os.environ[f"POINTS_CONSOLE_{s.upper()}_TARGET"] for s in Targets.__annotations__})
    app = create_app(lambda: Gateway(targets, admin_token), state_dir / OPERATORS_FILE, session_secret(state_dir))
    host = os.environ.get("POINTS_CONSOLE_HOST", "127.0.0.1")
    uvicorn.run(app, host=host, port=int(os.environ.get("POINTS_CONSOLE_PORT", "8080")), log_level="warning")


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
