"""Calling another Points service: authenticated channels and reading errors back."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.rpc import error_details_pb2, status_pb2

from points_platform.auth import USER_HEADER
from points_platform.config import PlatformSettings


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata for a bearer token."""
    return (("authorization", f"Bearer {token}"),)


def acting_for(metadata: tuple[tuple[str, str], ...], user_id: str) -> tuple[tuple[str, str], ...]:
    """The same call metadata, naming the end user an `app` call acts for (user-scoped calls)."""
    return (*metadata, (USER_HEADER, user_id))


def fits_header(value: str) -> bool:
    """Whether a user id can travel in a metadata value (printable ASCII, no edge whitespace)."""
    return bool(value) and value.isascii() and value.isprintable() and value == value.strip()


def open_channel(
    target: str,
    settings: PlatformSettings | None = None,
    *,
    max_reconnect_backoff_ms: int | None = None,
) -> grpc.aio.Channel:
    """An aio channel to a peer; TLS with this service's certificate when TLS is configured.

    `max_reconnect_backoff_ms` bounds how long a channel waits before redialling a peer that
    was down (gRPC's default grows to 120 s, so a peer that comes back stays unused for minutes).
    """
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        # With a dns:/// target naming several replicas, spread calls over all of them (docs/architecture.md, Scaling).
        ("grpc.lb_policy_name", "round_robin"),
    ]
    if max_reconnect_backoff_ms is not None:
        options += [
            ("grpc.initial_reconnect_backoff_ms", min(200, max_reconnect_backoff_ms)),
            ("grpc.min_reconnect_backoff_ms", min(200, max_reconnect_backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", max_reconnect_backoff_ms),
        ]
    if settings is not None and settings.tls_enabled:
        from pathlib import Path

        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None,
            private_key=Path(settings.tls_key_file).read_bytes(),
            certificate_chain=Path(settings.tls_cert_file).read_bytes(),
        )
        return grpc.aio.secure_channel(target, creds, options=options)
    return grpc.aio.insecure_channel(target, options=options)


def rpc_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status a Points server attached to an error, if any."""
    trailing: Sequence[tuple[str, str | bytes]] = ()
    getter = getattr(error, "trailing_metadata", None)
    if getter is not None:
        trailing = getter() or ()
    for key, value in trailing:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of an error from a Points server, if any."""
    status = rpc_status(error)
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def error_reason(error: grpc.RpcError) -> str:
    """UPPER_SNAKE reason of an error ("" when the server attached none)."""
    info = error_info(error)
    return info.reason if info is not None else ""
