"""Settings read from the environment, one frozen object per process."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Self, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from points_platform.tokens import check_tokens

# `fulfilment`: the services that honour entitlements (apply a discount code, check a pass in).
CALLERS = ("admin", "app", "earning", "redemption", "payments", "fulfilment")


class PlatformSettings(BaseSettings):
    """What every service process needs; a service subclasses it with its own prefix."""

    # hide_input_in_errors: a validation error must not print the tokens it refused.
    model_config = SettingsConfigDict(env_prefix="POINTS_", frozen=True, extra="ignore", hide_input_in_errors=True)

    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/points",
        description="SQLAlchemy async URL of this service's own database.",
    )
    host: str = Field(default="127.0.0.1", description="Address the gRPC server binds.")
    port: int = Field(default=0, description="gRPC port; 0 picks a free one (tests).")
    metrics_port: int = Field(default=0, description="Prometheus /metrics port; 0 disables it.")
    reuse_port: bool = Field(
        default=False,
        description="Share the gRPC port with other worker processes of this service (SO_REUSEPORT); "
        "off, a port already in use is an error.",
    )
    tokens_file: str = Field(default="", description="JSON file mapping caller name -> bearer token.")
    tokens_json: str = Field(default="", description="The same mapping inline (overrides tokens_file).")
    tls_cert_file: str = Field(default="", description="PEM server certificate; with the key, serve TLS.")
    tls_key_file: str = Field(default="", description="PEM private key of the server certificate.")
    tls_client_ca_file: str = Field(default="", description="Set to require client certificates (mTLS).")
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    shutdown_grace_seconds: float = Field(default=5.0, description="How long SIGTERM waits for in-flight calls.")
    health_check_interval_seconds: float = Field(default=2.0, description="Database probe period behind health.")
    db_pool_size: int = Field(default=10, description="Database connections (a fixed pool: a burst waits for one).")
    db_read_pool_size: int = Field(
        default=4, ge=1, description="Extra connections for single-statement hot reads (catalog Quote, wallet "
        "GetBalance), outside any transaction; opened on first use.")
    max_message_bytes: int = Field(default=4 * 1024 * 1024, description="Largest request or response accepted.")
    nats_url: str = Field(
        default="",
        description="NATS server (JetStream on) the outbox relay publishes domain events to; empty: no relay runs "
        "and events wait in the outbox (docs/events.md).",
    )
    outbox_keep_published_seconds: float = Field(
        default=86_400.0, description="How long a published outbox row is kept before the relay prunes it."
    )

    def load_tokens(self) -> dict[str, str]:
        """Return caller -> token; an empty mapping means no token is accepted."""
        raw = self.tokens_json or (Path(self.tokens_file).read_text() if self.tokens_file else "{}")
        data = json.loads(raw)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError("tokens must be a JSON object of caller name -> token")
        return dict(data)

    @model_validator(mode="after")
    def _refuse_unusable_tokens(self) -> Self:
        check_tokens(self.load_tokens())
        return self

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)


SettingsT = TypeVar("SettingsT", bound=PlatformSettings)


def settings_or_exit(settings_class: type[SettingsT]) -> SettingsT:
    """A process's settings from the environment; on a bad one, say which on stderr and exit 2
    (a service must not start half-configured, e.g. with a placeholder token)."""
    try:
        return settings_class()
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
    except OSError as exc:  # an unreadable tokens file
        problems = [str(exc)]
    print(f"{settings_class.__name__}: invalid settings: " + "; ".join(problems), file=sys.stderr)
    raise SystemExit(2)
