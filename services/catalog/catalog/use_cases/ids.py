"""Ids derived from the idempotency key: stable across retries and reseeding."""

from __future__ import annotations

import hashlib


def derived_id(prefix: str, request_id: str) -> str:
    return f"{prefix}-{hashlib.sha256(request_id.encode()).hexdigest()[:20]}"
