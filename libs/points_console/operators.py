"""Operator accounts: a JSON file of scrypt hashes in the state directory; passwords are never stored."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

# scrypt cost: interactive-login parameters (RFC 7914 section 2 suggests N=2**14, r=8 for them).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_CHARS = 12


def _derive(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def add_operator(path: Path, name: str, password: str) -> None:
    """Create or replace operator `name` in the file at `path` (mode 0600)."""
    if not name.isidentifier():
        raise ValueError("an operator name is letters, digits and underscores")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password has at least {MIN_PASSWORD_CHARS} characters")
    accounts = json.loads(path.read_text()) if path.exists() else {}
    salt = secrets.token_bytes(16)
    accounts[name] = {"salt": salt.hex(), "scrypt": _derive(password, salt).hex()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(accounts, out, indent=2)


def is_valid_login(path: Path, name: str, password: str) -> bool:
    """Whether `password` is operator `name`'s (constant-time compare; unknown names cost the same)."""
    accounts = json.loads(path.read_text()) if path.exists() else {}
    account = accounts.get(name)
    salt = bytes.fromhex(account["salt"]) if account else b"\0" * 16
    derived = _derive(password, salt)
    return account is not None and hmac.compare_digest(derived.hex(), account["scrypt"])
