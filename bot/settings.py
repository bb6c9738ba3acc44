"""Every knob, from environment variables or a .env file (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RUNBOOK = Path(__file__).resolve().parent.parent / "runbooks" / "nostrmaxi.yml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CUTOVER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///cutover.db",
        description="SQLAlchemy URL: sqlite:///file.db (embedded default) or postgresql+psycopg://…",
    )
    runbook: Path = Field(default=DEFAULT_RUNBOOK, description="Path of the runbook YAML file")
    http_port: int = Field(default=3000, description="Port of `cutover serve` in HTTP mode")
    http_host: str = Field(default="0.0.0.0", description="Address `cutover serve` listens on")
    log_level: str = "INFO"
    workers: int = Field(default=4, ge=1, le=32, description="Phases executing at once")
    scheduler_enabled: bool = Field(
        default=True, description="Run the scheduler (notices, gate timeouts, monitoring)"
    )
    scheduler_tick_seconds: float = Field(
        default=30.0, gt=0, le=300, description="How often the leader scans for due work"
    )
    scheduler_elect_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How often a standby tries to become leader"
    )
    notice_lease_seconds: float = Field(
        default=300.0, gt=0, description="A claimed notice not confirmed this long is re-sent"
    )
    notice_grace_seconds: float = Field(
        default=120.0, ge=0, description="A notice sent later than this after its time says so"
    )

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "CUTOVER_SLACK_BOT_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "CUTOVER_SLACK_SIGNING_SECRET"),
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "CUTOVER_SLACK_APP_TOKEN")
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias=AliasChoices("SLACK_API_URL", "CUTOVER_SLACK_API_URL"),
    )
