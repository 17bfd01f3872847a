"""Page sizes and the one page-token codec every list RPC uses (AIP-158).

A token is URL-safe base64 of a small JSON cursor in one of two shapes: a position in a keyset
ordered by (time, id) — `{"t": ISO-8601 with zone, "id": key}` — or, for the wallet's ledger,
a row id to read before — `{"before": n}`.

Tokens are validated strictly, field by field, rather than signed: the cursor only says where a
scan resumes, and every list RPC applies its filters (the user, the region, the state) from the
request, never from the token, so a forged but well-formed token reads nothing the caller could
not page to anyway. A signature would add a secret that every worker of a service must share and
keep across restarts, and would still need this validation for the tokens it signed. What the
validation must stop is a token that reaches the database or a conversion as something it cannot
hold (a timestamp that overflows in UTC, a NUL or lone surrogate in a text key, a number past
int64) and so fails as INTERNAL: anything but a token of the expected shape is INVALID_ARGUMENT
`INVALID_PAGE_TOKEN`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from points_platform.errors import InvalidArgument, invalid_field

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

# Longer than any token we issue (a 128-character key and a timestamp); bounds the work spent on junk.
MAX_TOKEN_CHARS = 512
MAX_KEY_CHARS = 128
MAX_TIME_CHARS = 40
MAX_POSITION = 2**63 - 1


def page_size(requested: int) -> int:
    """Clamp a requested page size; 0 means the default, negative is an error."""
    if requested < 0:
        raise invalid_field("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_after(moment: datetime, key: str) -> str:
    """The token of a page that resumes after the row (moment, key) of a (time, id) keyset."""
    if moment.utcoffset() is None:  # a bug, not bad input: `decode_after` would refuse the token
        raise ValueError("a page token's time must carry its zone")
    return _encode({"t": moment.isoformat(), "id": key})


def decode_after(token: str) -> tuple[datetime, str] | None:
    """None for the first page, else the (UTC moment, key) an `encode_after` token names."""
    fields = _decode(token, ("t", "id"))
    if fields is None:
        return None
    return _moment(fields["t"]), _key(fields["id"])


def encode_before(position: int) -> str:
    """The token of a page that resumes before row `position` of a descending id keyset."""
    return _encode({"before": position})


def decode_before(token: str) -> int | None:
    """None for the first page, else the position an `encode_before` token names."""
    fields = _decode(token, ("before",))
    if fields is None:
        return None
    position = fields["before"]
    if type(position) is not int or not 0 < position <= MAX_POSITION:
        raise _invalid()
    return position


def _encode(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode()


def _decode(token: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The cursor's fields: exactly `keys`, each once, from canonical base64 of a JSON object."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_CHARS:
        raise _invalid()
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        cursor = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_refuse)
    except (UnicodeError, binascii.Error, ValueError, RecursionError):
        raise _invalid() from None
    if not isinstance(cursor, dict) or sorted(cursor) != sorted(keys):
        raise _invalid()
    return cursor


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    cursor = dict(pairs)
    if len(cursor) != len(pairs):
        raise ValueError("a key appears twice")
    return cursor


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _moment(value: Any) -> datetime:
    """A zone-aware ISO-8601 time that exists in UTC (the database compares in UTC)."""
    if not isinstance(value, str) or len(value) > MAX_TIME_CHARS:
        raise _invalid()
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("no zone")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid() from None


def _key(value: Any) -> str:
    """A row key: non-empty, bounded and printable; `isprintable` also refuses NUL and the other
    control characters, and lone surrogates (which UTF-8 text in the database cannot hold)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_CHARS or not value.isprintable():
        raise _invalid()
    return value


def _invalid() -> InvalidArgument:
    return invalid_field("page_token", "not a token this service issued", "INVALID_PAGE_TOKEN")
