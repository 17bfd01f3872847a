"""Which bearer tokens a service refuses to start with (docs/architecture.md, Security).

A token copied from an example file (`REPLACE-ME-app-token`) or a short one would let anyone who
reads the example, or guesses, call as that caller. The check runs on the settings, so a service
configured that way exits with a settings error instead of serving. Messages name the caller,
never the token.
"""

from __future__ import annotations

from collections.abc import Mapping

MIN_TOKEN_BYTES = 32  # 256 bits when random; `secrets.token_urlsafe(32)` gives 43 characters
# Matched case-insensitively anywhere in the token. Long enough that a random token_urlsafe token
# contains one with negligible odds (`points up` would simply generate anew).
PLACEHOLDER_MARKERS = (
    "replace",
    "changeme",
    "change-me",
    "change_me",
    "example",
    "placeholder",
    "dummy",
    "password",
    "<",
    ">",
)
MIN_DISTINCT_CHARACTERS = 8  # "aaaa…" or "0000…" is no secret however long


def token_weakness(token: str) -> str | None:
    """Why `token` must not be used, or None if it may."""
    lowered = token.lower()
    marker = next((m for m in PLACEHOLDER_MARKERS if m in lowered), None)
    if marker is not None:
        return f"looks like a placeholder (contains {marker!r})"
    if len(token.encode()) < MIN_TOKEN_BYTES:
        return f"is shorter than {MIN_TOKEN_BYTES} bytes"
    if len(set(token)) < MIN_DISTINCT_CHARACTERS:
        return f"has fewer than {MIN_DISTINCT_CHARACTERS} distinct characters"
    return None


def check_tokens(tokens: Mapping[str, str]) -> None:
    """Raise ValueError naming every caller whose token is unusable (an empty token is allowed: it
    is ignored, that caller cannot call)."""
    problems = [
        f"{caller}: token {why}" for caller, token in tokens.items() if token and (why := token_weakness(token))
    ]
    if problems:
        raise ValueError("unusable bearer tokens: " + "; ".join(problems))
