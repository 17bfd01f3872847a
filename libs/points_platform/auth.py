"""Caller identity and per-method authorization (docs/architecture.md, Security and Policy).

A caller is named by its bearer token (`authorization: Bearer <token>`, tokens from
configuration) or, with mutual TLS, by the common name of its client certificate.
"""

from __future__ import annotations

import contextvars
import hmac
from collections.abc import Iterable, Mapping, Sequence

from points_platform.config import CALLERS
from points_platform.errors import PermissionDenied, Unauthenticated

current_caller: contextvars.ContextVar[str] = contextvars.ContextVar("current_caller", default="")

# The end user a call of the user-facing backend (`app`) acts for, from this header. Its calls
# that read or spend one user's data are scoped to that user (docs/architecture.md, Policy): a bug or a forged
# parameter in the backend cannot read another user's balance or spend another user's funds.
USER_HEADER = "x-points-user"
# The person behind an `admin` call (the operator console sends it): logged with the call, never trusted for access.
OPERATOR_HEADER = "x-points-operator"
USER_SCOPED_CALLERS = frozenset({"app"})
# The user a scoped call acts for ("" when the call is not scoped): servicers of methods whose
# request names no user (a redemption by id) check what they load against it.
current_user: contextvars.ContextVar[str] = contextvars.ContextVar("current_user", default="")

# Method short name -> the request field naming the user it acts for ("" = the servicer checks
# `current_user` against what it loads). A scoped method's request must have that field: a
# missing one fails the call (a configuration bug), never lets it through.
UserScope = Mapping[str, str]

# Method short name -> callers allowed to invoke it.
Policy = Mapping[str, frozenset[str]]

ALL_CALLERS = frozenset(CALLERS)


def allow(*callers: str) -> frozenset[str]:
    """Build a policy entry, refusing unknown caller names early."""
    unknown = set(callers) - ALL_CALLERS
    if unknown:
        raise ValueError(f"unknown callers in policy: {sorted(unknown)}")
    return frozenset(callers)


class Authenticator:
    """Names the caller of a call and checks it against the service's policy."""

    def __init__(
        self, tokens: Mapping[str, str], policy: Policy, *, trust_client_cert: bool,
        user_scoped: UserScope | None = None,
    ) -> None:
        self._tokens = [(caller, token.encode()) for caller, token in tokens.items() if token]
        self._policy = policy
        self._trust_client_cert = trust_client_cert
        self._user_scoped: UserScope = user_scoped or {}

    @property
    def trusts_client_cert(self) -> bool:
        return self._trust_client_cert

    def identify(
        self, metadata: Sequence[tuple[str, str | bytes]], auth_context: Mapping[str, Iterable[bytes]]
    ) -> str:
        """Return the caller name or raise Unauthenticated."""
        return self.identify_by(next((v for k, v in metadata if k == "authorization"), None), auth_context)

    def identify_by(self, authorization: str | bytes | None, auth_context: Mapping[str, Iterable[bytes]]) -> str:
        """`identify`, given the value of the call's first `authorization` header (None: it sent none)."""
        if self._trust_client_cert:
            names = auth_context.get("x509_common_name") or ()
            for name in names:
                caller = name.decode()
                if caller in ALL_CALLERS:
                    return caller
        if authorization is None:
            raise Unauthenticated("MISSING_CREDENTIALS", "authorization: Bearer <token> is required")
        value = authorization.decode() if isinstance(authorization, bytes) else authorization
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("MALFORMED_CREDENTIALS", "expected authorization: Bearer <token>")
        presented = token.strip().encode()
        caller_found = ""
        for caller, known in self._tokens:
            # Compare against every token so timing does not reveal which prefix matched.
            if hmac.compare_digest(presented, known):
                caller_found = caller
        if not caller_found:
            raise Unauthenticated("UNKNOWN_CREDENTIALS", "the token is not known")
        return caller_found

    def scope(self, caller: str, method: str, metadata: Sequence[tuple[str, str | bytes]], request: object) -> str:
        """The user a user-scoped method acts for ("" if the call is not scoped); refuses a scoped
        call without the user header, or whose request names another user."""
        field = self._user_scoped.get(method)
        if caller not in USER_SCOPED_CALLERS or field is None:
            return ""
        return self.scope_by(method, field, next((v for k, v in metadata if k == USER_HEADER), ""), request)

    def scope_by(self, method: str, field: str, header: str | bytes, request: object) -> str:
        """`scope` of a scoped caller's call of a scoped method (`field`: its `user_field`), given the
        value of the call's first user header ("" when it sent none)."""
        user = header.decode() if isinstance(header, bytes) else header
        if not user:
            raise PermissionDenied(
                "USER_REQUIRED", f"{USER_HEADER}: the user this call acts for is required", metadata={"method": method}
            )
        if field and getattr(request, field) != user:
            raise PermissionDenied(
                "USER_SCOPE_MISMATCH", f"the call acts for {user!r} and may touch only that user's data",
                metadata={"method": method, "field": field},
            )
        return user

    def user_field(self, method: str) -> str | None:
        """The request field naming the user `method` acts for ("": none, the servicer checks; None:
        the method is not user-scoped)."""
        return self._user_scoped.get(method)

    def allowed_callers(self, method: str) -> frozenset[str]:
        """The callers the policy lets call `method` (none when the policy does not name it)."""
        return self._policy.get(method) or frozenset()

    def authorize(self, caller: str, method: str) -> None:
        """Raise PermissionDenied unless the policy lets `caller` call `method`."""
        allowed = self._policy.get(method)
        if allowed is None or caller not in allowed:
            raise PermissionDenied(
                "CALLER_NOT_ALLOWED",
                f"caller {caller!r} may not call {method}",
                metadata={"caller": caller, "method": method},
            )
