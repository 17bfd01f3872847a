"""Catalog settings: POINTS_CATALOG_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings


class CatalogSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_CATALOG_", frozen=True, extra="ignore")
