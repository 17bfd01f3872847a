"""Catalog settings: POINTS_CATALOG_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings


class CatalogSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_CATALOG_", frozen=True, extra="ignore")

    default_reservation_ttl_seconds: int = Field(
        default=300, description="Lifetime of a reservation when ReserveStock gives ttl_seconds = 0."
    )
    max_reservation_ttl_seconds: int = Field(default=86_400, description="Largest ttl_seconds accepted.")
    sweep_interval_seconds: float = Field(
        default=1.0, description="How often the sweeper releases expired reservations."
    )
    db_pool_size: int = Field(
        default=16, description="Database connections (a fixed pool, no overflow: a burst waits for a connection "
        "instead of opening and closing extra ones).")
    memory_lease_seconds: float = Field(
        default=3.0, gt=0, description="Lease of this process's items and campaigns in memory (renewed every "
        "third of it): a process that cannot be reached stops serving from memory after it, and a catalog "
        "change waits at most that long for a process that vanished without deregistering.")
    stock_low_threshold: int = Field(
        default=10, ge=0, description="A limited item's stock is low at or below this many units free to reserve: "
        "the move that crosses it appends a stock_low event (docs/events.md). 0 = no stock_low events.")
    clock_offset_seconds: float = Field(default=0.0, description="Shift the service clock (tests of windows).")
