"""Redemption settings: POINTS_REDEMPTION_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings


class RedemptionSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_REDEMPTION_", frozen=True, extra="ignore")
