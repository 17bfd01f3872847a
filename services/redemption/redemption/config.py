"""Redemption settings: POINTS_REDEMPTION_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings


class RedemptionSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_REDEMPTION_", frozen=True, extra="ignore")

    wallet_target: str = Field(default="127.0.0.1:50051", description="host:port of the wallet service.")
    catalog_target: str = Field(default="127.0.0.1:50052", description="host:port of the catalog service.")
    hold_ttl_seconds: int = Field(default=60, description="TTL of the wallet hold a saga takes.")
    reservation_ttl_seconds: int = Field(
        default=180, description="TTL of the catalog reservation; longer than the hold so stock outlives funds."
    )
    reservation_recheck_seconds: float = Field(
        default=30.0, description="Before committing funds, re-read a reservation older than this."
    )
    peer_timeout_seconds: float = Field(default=3.0, description="Deadline of each call to wallet/catalog.")
    db_pool_size: int = Field(
        default=20, description="Database connections, never more: every saga write is one short statement, so a "
        "burst waits for a pooled connection instead of opening and closing overflow ones (a backend start each).")
    max_concurrent_steps: int = Field(default=64, description="Saga steps in flight at once per process.")
    lease_seconds: float = Field(default=15.0, description="How long a driver owns a saga without writing it.")
    recovery_interval_seconds: float = Field(default=1.0, description="Pause of the recovery loop when idle.")
    recovery_batch: int = Field(default=32, description="Sagas one recovery pass claims.")
    inline_retries: int = Field(default=4, description="Transient failures a driver retries before handing over.")
    retry_base_seconds: float = Field(default=0.1, description="First backoff after a transient failure.")
    retry_max_seconds: float = Field(default=5.0, description="Longest backoff between attempts.")
    redeem_max_wait_seconds: float = Field(
        default=10.0, description="How long Redeem waits for a terminal state when the call has no deadline."
    )
    refund_window_seconds: float = Field(default=14 * 86400, description="Refunds allowed this long after completion.")
    clock_offset_seconds: float = Field(default=0.0, description="Shift of the service clock (tests).")
