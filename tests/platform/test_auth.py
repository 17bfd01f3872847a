"""Caller identification from bearer tokens and client certificates; per-method policy."""

from __future__ import annotations

import pytest

from points_platform.auth import Authenticator, allow
from points_platform.errors import PermissionDenied, Unauthenticated
from tests.support.credentials import TOKENS as TEST_TOKENS

TOKENS = {caller: TEST_TOKENS[caller] for caller in ("admin", "app")}
POLICY = {"CreateItem": allow("admin"), "GetItem": allow("admin", "app")}


def auth(trust_cert: bool = False) -> Authenticator:
    return Authenticator(TOKENS, POLICY, trust_client_cert=trust_cert)


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "MISSING_CREDENTIALS"),
        ((("authorization", "Basic abc"),), "MALFORMED_CREDENTIALS"),
        ((("authorization", "Bearer nope"),), "UNKNOWN_CREDENTIALS"),
        ((("authorization", f"Bearer {TOKENS['admin']}-longer"),), "UNKNOWN_CREDENTIALS"),
    ],
)
def test_unknown_or_missing_token_is_unauthenticated(metadata: tuple[tuple[str, str], ...], reason: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        auth().identify(metadata, {})
    assert caught.value.reason == reason


def test_known_token_names_the_caller() -> None:
    assert auth().identify((("authorization", f"Bearer {TOKENS['app']}"),), {}) == "app"


def test_policy_denies_known_caller_outside_it() -> None:
    auth().authorize("admin", "CreateItem")
    with pytest.raises(PermissionDenied):
        auth().authorize("app", "CreateItem")
    with pytest.raises(PermissionDenied):
        auth().authorize("admin", "MethodNotInPolicy")


def test_client_certificate_names_the_caller_only_when_trusted() -> None:
    peer = {"x509_common_name": [b"payments"]}
    assert auth(trust_cert=True).identify((), peer) == "payments"
    with pytest.raises(Unauthenticated):
        auth(trust_cert=False).identify((), peer)
    with pytest.raises(Unauthenticated):
        auth(trust_cert=True).identify((), {"x509_common_name": [b"stranger"]})


def test_policy_rejects_unknown_caller_names() -> None:
    with pytest.raises(ValueError):
        allow("root")


class _Read:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id


def test_user_scoped_calls_of_the_app_name_their_user() -> None:
    scoped = Authenticator(
        TOKENS, POLICY, trust_client_cert=False, user_scoped={"GetItem": "user_id", "GetThing": ""}
    )
    header = (("x-points-user", "ann"),)
    assert scoped.scope("app", "GetItem", header, _Read("ann")) == "ann"
    assert scoped.scope("app", "GetThing", header, object()) == "ann"  # "": the servicer checks what it loads
    with pytest.raises(PermissionDenied) as other:
        scoped.scope("app", "GetItem", header, _Read("bob"))
    assert other.value.reason == "USER_SCOPE_MISMATCH"
    with pytest.raises(PermissionDenied) as missing:
        scoped.scope("app", "GetItem", (), _Read("ann"))
    assert missing.value.reason == "USER_REQUIRED"
    with pytest.raises(AttributeError):  # a request without the configured field fails closed
        scoped.scope("app", "GetItem", header, object())
    assert scoped.scope("admin", "GetItem", (), _Read("bob")) == ""  # internal callers are not scoped
    assert scoped.scope("app", "CreateItem", (), _Read("bob")) == ""  # not a scoped method


def test_a_methods_policy_entry_and_user_field_are_read_once_per_method() -> None:
    scoped = Authenticator(TOKENS, POLICY, trust_client_cert=False, user_scoped={"GetItem": "user_id", "GetThing": ""})
    assert scoped.allowed_callers("GetItem") == {"admin", "app"}
    assert scoped.allowed_callers("MethodNotInPolicy") == frozenset()
    assert (scoped.user_field("GetItem"), scoped.user_field("GetThing"), scoped.user_field("CreateItem")) == (
        "user_id", "", None
    )


def test_identify_and_scope_by_header_values_answer_as_from_metadata() -> None:
    scoped = Authenticator(TOKENS, POLICY, trust_client_cert=False, user_scoped={"GetItem": "user_id"})
    assert scoped.identify_by(f"Bearer {TOKENS['app']}", {}) == "app"
    assert scoped.identify_by(f"Bearer {TOKENS['app']}".encode(), {}) == "app"
    with pytest.raises(Unauthenticated) as missing:
        scoped.identify_by(None, {})
    assert missing.value.reason == "MISSING_CREDENTIALS"
    assert scoped.scope_by("GetItem", "user_id", b"ann", _Read("ann")) == "ann"
    with pytest.raises(PermissionDenied) as required:
        scoped.scope_by("GetItem", "user_id", "", _Read("ann"))
    assert required.value.reason == "USER_REQUIRED"
