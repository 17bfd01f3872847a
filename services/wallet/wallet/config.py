"""Wallet settings: POINTS_WALLET_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings


class WalletSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_WALLET_", frozen=True, extra="ignore")
