"""Earning settings: POINTS_EARNING_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings


class EarningSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_EARNING_", frozen=True, extra="ignore")
