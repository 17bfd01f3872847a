"""Wallet settings: POINTS_WALLET_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings


class WalletSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_WALLET_", frozen=True, extra="ignore")

    hold_default_ttl_seconds: int = Field(default=900, description="TTL of a hold whose request says 0.")
    hold_max_ttl_seconds: int = Field(default=86_400, description="Longest TTL a Reserve may ask for.")
    sweep_interval_seconds: float = Field(default=1.0, description="How often expired holds are released.")
    sweep_batch_size: int = Field(default=200, description="Holds released per sweeper transaction.")
    gift_rate_bps: int = Field(default=5_000, description="Diamonds per coin in basis points (floor).")
    cash_minor_per_thousand_diamonds: int = Field(
        default=500, description="Payout rate: cash minor units per 1000 diamonds."
    )
    cash_currency: str = Field(default="USD", description="ISO 4217 code of payouts.")
    group_commit_max_batch: int = Field(
        default=256, description="Most ledger operations applied in one DB transaction."
    )
    group_commit_concurrency: int = Field(
        default=1, description="Batches in flight at once per process (one: larger batches, less CPU per operation)."
    )
    points_expiry_days: int = Field(
        default=0, ge=0, le=36_500, description="Days until credited POINTS expire (0 = points never expire)."
    )
    expiry_sweep_interval_seconds: float = Field(default=60.0, description="How often expired points lots are posted.")
    expiry_sweep_batch_size: int = Field(default=200, description="Accounts handled per expiry transaction.")
    clock_offset_seconds: float = Field(default=0.0, description="Shift the clock (tests of TTLs against a process).")
