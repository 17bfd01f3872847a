"""Console settings: POINTS_CONSOLE_* environment variables (`points up` sets them for the process it starts)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_CONSOLE_", frozen=True, extra="ignore")

    state_dir: str = Field(
        default=".points", description="Directory with credentials.json (the admin token), operators.json and "
        "console-secret (the cookie-signing key, made once).")
    host: str = Field(default="127.0.0.1", description="Address the console's HTTP server binds.")
    port: int = Field(default=8080, description="The console's HTTP port.")
    wallet_target: str = Field(default="127.0.0.1:50051", description="host:port of the wallet service.")
    earning_target: str = Field(default="127.0.0.1:50053", description="host:port of the earning service.")
    catalog_target: str = Field(default="127.0.0.1:50052", description="host:port of the catalog service.")
    redemption_target: str = Field(default="127.0.0.1:50054", description="host:port of the redemption service.")
    earning_metrics_urls: str = Field(
        default="", description="Comma-separated /metrics URLs of the earning workers (points earned per hour); "
        "empty: no chart.")
    redemption_metrics_urls: str = Field(
        default="", description="Comma-separated /metrics URLs of the redemption workers (redemptions by state); "
        "empty: no chart.")
    metrics_sample_seconds: float = Field(
        default=60.0, description="How often the console reads the earning counter for the hourly chart (also on "
        "every overview load).")


def url_list(text: str) -> list[str]:
    return [url.strip() for url in text.split(",") if url.strip()]
