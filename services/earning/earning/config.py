"""Earning settings: POINTS_EARNING_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from points_platform.config import PlatformSettings

DEFAULT_RULES_FILE = str(Path(__file__).parent / "default_rules.json")


class EarningSettings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_EARNING_", frozen=True, extra="ignore")

    wallet_target: str = Field(default="127.0.0.1:50051", description="host:port of the wallet service.")
    wallet_timeout_seconds: float = Field(default=3.0, description="Deadline of one wallet credit call.")
    rules_file: str = Field(default=DEFAULT_RULES_FILE, description="Rule set seeded as version 1 on first start.")
    reconcile_interval_seconds: float = Field(default=2.0, description="Pause between reconciliation passes.")
    reconcile_min_age_seconds: float = Field(
        default=5.0, description="A pending credit is resent by the loop once it is this old."
    )
    wallet_error_limit: int = Field(
        default=5, ge=1,
        description="A credit the wallet fails on its side (INTERNAL/UNKNOWN) this many times when sent alone goes to"
        " the dead letter (ListFailedCredits / RequeueFailedCredits).",
    )
    suspended_retry_seconds: float = Field(
        default=300.0, gt=0,
        description="A credit the wallet refused because its user is suspended is held and resent after this long"
        " (the longest a reinstated user waits for held points).",
    )
    clock_offset_seconds: float = Field(default=0.0, description="Shift of the service clock (tests).")
