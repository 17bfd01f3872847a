"""Typed domain errors and their one mapping to a gRPC status with google.rpc details.

Domain code raises these; the error interceptor turns them into a status carrying
`google.rpc.ErrorInfo` (domain `points.<service>`, UPPER_SNAKE reason) and, for invalid
input, `google.rpc.BadRequest` field violations (AIP-193).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2


class DomainError(Exception):
    """A failure the caller can act on. Subclasses fix the gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self,
        reason: str,
        message: str = "",
        *,
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason.replace("_", " ").lower()
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations)


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


def idempotency_key_reused(request_id: str) -> AlreadyExists:
    """The same request_id arrived with different parameters."""
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        "request_id was already used with different parameters",
        metadata={"request_id": request_id},
    )


def invalid_field(field: str, description: str, reason: str = "INVALID_FIELD") -> InvalidArgument:
    """Shorthand for one bad field."""
    return InvalidArgument(reason, f"{field}: {description}", field_violations=[(field, description)])


def to_rpc_status(error: DomainError, domain: str) -> status_pb2.Status:
    """Build the google.rpc.Status for a domain error."""
    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if error.field_violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in error.field_violations
            ]
        )
        packed_bad = any_pb2.Any()
        packed_bad.Pack(bad)
        details.append(packed_bad)
    return status_pb2.Status(
        code=_CODE_NUMBERS[error.code], message=error.message, details=details
    )


_CODE_NUMBERS = {code: code.value[0] for code in grpc.StatusCode}
assert _CODE_NUMBERS[grpc.StatusCode.INVALID_ARGUMENT] == code_pb2.INVALID_ARGUMENT
