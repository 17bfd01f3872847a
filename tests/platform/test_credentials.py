"""`points up` credentials: generated once, kept across restarts, a caller added since gets its own token."""

from __future__ import annotations

import json
from pathlib import Path

from points_cli.suite import load_credentials
from points_platform.config import CALLERS


def test_a_new_caller_gets_a_token_and_the_others_keep_theirs(tmp_path: Path) -> None:
    older = {c: f"{c}-token" for c in CALLERS if c != "fulfilment"}
    (tmp_path / "credentials.json").write_text(json.dumps(older))
    tokens = load_credentials(tmp_path)
    assert set(tokens) == set(CALLERS) and tokens["fulfilment"] not in older.values()
    assert {c: tokens[c] for c in older} == older
    assert load_credentials(tmp_path) == tokens
