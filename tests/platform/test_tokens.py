"""Services refuse placeholder and short bearer tokens (points_platform.tokens), at settings time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from points_platform.config import PlatformSettings
from points_platform.tokens import token_weakness
from tests.support.credentials import TOKENS

REFUSED = {
    "REPLACE-ME-app-token": "placeholder",
    "replace_with_a_real_token_0123456789abcdef": "placeholder",
    "changeme-changeme-changeme-changeme-0123": "placeholder",
    "example-token-0123456789abcdefghijklmnop": "placeholder",
    "<paste the app token here, 32 bytes or more>": "placeholder",
    "app-token": "shorter than 32 bytes",
    "Zq4v-Ww9_a8Lk2mP0xRt7bNc1yHs3d": "shorter than 32 bytes",  # 30 random characters
    "ab" * 20: "distinct characters",
}


@pytest.mark.parametrize(("token", "why"), REFUSED.items())
def test_placeholder_short_or_repetitive_tokens_are_refused(token: str, why: str) -> None:
    weakness = token_weakness(token)
    assert weakness is not None and why in weakness


def test_generated_and_test_tokens_are_accepted() -> None:
    import secrets

    assert token_weakness(secrets.token_urlsafe(32)) is None
    assert all(token_weakness(token) is None for token in TOKENS.values())


def test_settings_with_an_unusable_token_are_invalid_and_name_the_caller_not_the_token() -> None:
    with pytest.raises(ValidationError) as caught:
        PlatformSettings(tokens_json=json.dumps({**TOKENS, "app": "REPLACE-ME-app-token", "admin": "short"}))
    message = str(caught.value)
    assert "app: token looks like a placeholder" in message
    assert "admin: token is shorter than 32 bytes" in message
    assert "REPLACE-ME-app-token" not in message  # pydantic would echo the input, tokens and all
    # An empty token is no token: that caller simply cannot call.
    assert PlatformSettings(tokens_json=json.dumps({**TOKENS, "payments": ""})).load_tokens()["payments"] == ""


@pytest.mark.parametrize("service", ["wallet", "catalog", "earning", "redemption"])
def test_a_service_with_a_placeholder_token_file_exits_with_a_settings_error(service: str, tmp_path: Path) -> None:
    tokens_file = tmp_path / "credentials.json"
    tokens_file.write_text(json.dumps({**TOKENS, "earning": "REPLACE-ME-earning-token"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
    env[f"POINTS_{service.upper()}_TOKENS_FILE"] = str(tokens_file)
    # No database is reachable there: the settings must stop the process before anything connects.
    env[f"POINTS_{service.upper()}_DATABASE_URL"] = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    result = subprocess.run(
        [sys.executable, "-m", service], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "invalid settings" in lines[0] and "earning: token looks like a placeholder" in lines[0]
    assert "REPLACE-ME-earning-token" not in result.stderr
