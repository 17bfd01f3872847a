"""Opaque page tokens (AIP-158): base64 of a small JSON cursor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from points_platform.errors import invalid_field

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    """Clamp a requested page size; 0 means the default, negative is an error."""
    if requested < 0:
        raise invalid_field("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, Any] | None:
    """None for the first page; INVALID_ARGUMENT for a token we did not issue."""
    if not token:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid_field("page_token", "not a token this service issued", "INVALID_PAGE_TOKEN") from None
    if not isinstance(cursor, dict):
        raise invalid_field("page_token", "not a token this service issued", "INVALID_PAGE_TOKEN")
    return cursor
