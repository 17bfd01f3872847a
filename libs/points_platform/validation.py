"""Edge validation shared by the servicers: ids, request ids, regions, amounts."""

from __future__ import annotations

import hashlib
import re

from google.protobuf.message import Message
from iso3166 import countries_by_alpha2

from points_platform.errors import invalid_field

_ID = re.compile(r"^[A-Za-z0-9._:@\-]{1,128}$")
MAX_INT64 = 2**63 - 1


def require_request_id(value: str, field: str = "request_id") -> str:
    if not 1 <= len(value) <= 128 or not value.isprintable():
        raise invalid_field(field, "must be 1-128 printable characters")
    return value


def require_id(field: str, value: str) -> str:
    if not _ID.match(value):
        raise invalid_field(field, "must be 1-128 characters of [A-Za-z0-9._:@-]")
    return value


def require_region(field: str, value: str) -> str:
    """An ISO 3166-1 alpha-2 code (upper case) as the `iso3166` package lists them: the assigned
    codes plus XK (Kosovo, user-assigned but in common use)."""
    if value not in countries_by_alpha2:
        raise invalid_field(field, "must be an ISO 3166-1 alpha-2 code such as US")
    return value


def require_positive(field: str, value: int, maximum: int = MAX_INT64) -> int:
    if not 0 < value <= maximum:
        raise invalid_field(field, f"must be between 1 and {maximum}")
    return value


def require_text(field: str, value: str, max_len: int, *, required: bool = False) -> str:
    """Free text (names, notes, reasons): PostgreSQL text cannot hold NUL, so it is refused here
    (INVALID_ARGUMENT) rather than failing in the database (which would answer INTERNAL)."""
    if required and not value:
        raise invalid_field(field, "is required")
    if len(value) > max_len:
        raise invalid_field(field, f"must be at most {max_len} characters")
    if "\x00" in value:
        raise invalid_field(field, "must not contain NUL characters")
    return value


def request_digest(message: Message) -> bytes:
    """sha256 of the request's deterministic serialization, its request_id cleared (the key is
    compared on its own; the digest says whether the rest is the same)."""
    copy = type(message)()
    copy.CopyFrom(message)
    if "request_id" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


def fingerprint(message: Message) -> str:
    """Stable hash of a request without its request_id: same key + different body = reuse."""
    return request_digest(message).hex()
