"""`points up` credentials: generated once, kept across restarts; a caller added since, or one
with a token the services would refuse, gets a new token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from points_cli.suite import load_credentials
from points_platform.config import CALLERS
from points_platform.tokens import token_weakness
from tests.support.credentials import TOKENS


def test_a_new_caller_gets_a_token_and_the_others_keep_theirs(tmp_path: Path) -> None:
    older = {c: TOKENS[c] for c in CALLERS if c != "fulfilment"}
    (tmp_path / "credentials.json").write_text(json.dumps(older))
    tokens = load_credentials(tmp_path)
    assert set(tokens) == set(CALLERS) and tokens["fulfilment"] not in older.values()
    assert {c: tokens[c] for c in older} == older
    assert load_credentials(tmp_path) == tokens


def test_points_up_replaces_a_credentials_file_the_services_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({**TOKENS, "app": "app-token"}))
    tokens = load_credentials(tmp_path)
    assert tokens["app"] != "app-token"
    assert {c: t for c, t in tokens.items() if c != "app"} == {c: t for c, t in TOKENS.items() if c != "app"}
    assert set(tokens) == set(CALLERS)
    assert all(token_weakness(token) is None for token in tokens.values())
    assert json.loads(path.read_text()) == tokens
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_credentials(tmp_path) == tokens  # good ones are kept
