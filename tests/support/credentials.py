"""The bearer tokens every test server accepts: one per caller, each long enough for the
services' token rules (points_platform.tokens)."""

from __future__ import annotations

from points_platform.config import CALLERS

TOKENS = {caller: f"{caller}-token-for-tests-0123456789abcdefghij" for caller in CALLERS}
