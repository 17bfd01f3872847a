"""Forged page tokens: what a caller may send in `page_token` that no service issued.

Each one must be refused as INVALID_ARGUMENT `INVALID_PAGE_TOKEN` by every list RPC, never reach
the database or a conversion that fails as INTERNAL."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st


def b64(raw: bytes | str) -> str:
    return base64.urlsafe_b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def cursor_token(cursor: Any) -> str:
    """A token of our own encoding (base64 of JSON) holding whatever `cursor` the caller chose."""
    return b64(json.dumps(cursor))


GOOD_TIME = "2026-03-02T12:00:00+00:00"

# Well-formed base64 of JSON with a wrong field: both shapes' key names, so each list's codec meets
# a value it must judge rather than a key it does not expect (unknown keys are their own case).
_BAD_CURSORS: list[Any] = [
    {"t": "0001-01-01T00:00:00+14:00", "id": "x"},  # overflows on conversion to UTC
    {"t": "9999-12-31T23:59:59-14:00", "id": "x"},  # overflows the other way
    {"t": "2026-03-02T12:00:00", "id": "x"},  # no zone
    {"t": "2026-13-45T99:00:00+00:00", "id": "x"},
    {"t": GOOD_TIME + "x" * 100, "id": "x"},
    {"t": 1_700_000_000, "id": "x"},
    {"t": None, "id": "x"},
    {"t": GOOD_TIME, "id": "a\x00b"},  # PostgreSQL text cannot hold NUL
    {"t": GOOD_TIME, "id": "\ud800"},  # a lone surrogate is not UTF-8
    {"t": GOOD_TIME, "id": "tab\there"},
    {"t": GOOD_TIME, "id": "x" * 10_000},
    {"t": GOOD_TIME, "id": ""},
    {"t": GOOD_TIME, "id": 7},
    {"t": GOOD_TIME, "id": ["x"]},
    {"t": GOOD_TIME},
    {"t": GOOD_TIME, "id": "x", "i": "x"},  # an unknown key
    {"t": "0001-01-01T00:00:00+14:00", "id": "x", "i": "x"},  # the audit's example
    {"before": 2**63},  # past int64
    {"before": 2**200},
    {"before": -1},
    {"before": 0},
    {"before": 1.5},
    {"before": True},
    {"before": "12"},
    {"before": 12, "extra": 1},
    {},
    [],
    "t",
    12,
    None,
]

FORGED_TOKENS: list[str] = [
    *(cursor_token(c) for c in _BAD_CURSORS),
    b64("not json at all"),
    b64(b"\xff\xfe\x00binary"),
    b64('{"before": NaN}'),
    b64('{"before": 12, "before": 13}'),  # a key twice
    b64("1" * 5000),  # an integer too long to convert
    b64("[" * 10_000),  # nesting deep enough to exhaust the parser's recursion
    b64('{"t": "' + "9" * 400 + '", "id": "x"}'),
    "!!!",
    "%%not-a-token",
    "e30",  # `{}` without its padding
    "eyJ0IjoieCJ9",
    "\x00",
    "\u2603",
    "x" * 100_000,
]


def forged_tokens() -> st.SearchStrategy[str]:
    """The listed forgeries, random text, and base64 of random bytes."""
    return st.one_of(
        st.sampled_from(FORGED_TOKENS),
        st.text(min_size=1, max_size=80),
        st.binary(min_size=1, max_size=120).map(b64),
    )
