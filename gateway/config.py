"""Settings from `ISTHMUS_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ISTHMUS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.isthmus/isthmus.db",
        description="SQLAlchemy URL: SQLite (WAL) by default, or postgresql+psycopg://...",
    )
    host: str = Field(default="127.0.0.1", description="Interface the API listens on")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the API listens on")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Larger request bodies get 413"
    )
    page_size_max: int = Field(default=500, ge=1, description="Largest page of GET /v1/orders")
    commit_batch_max: int = Field(
        default=256, ge=1, description="Most order writes committed in one transaction"
    )
    stream_queue_size: int = Field(
        default=1024,
        ge=1,
        description="Events buffered per WebSocket subscriber before it is dropped as too slow",
    )
    venue_stale_after_seconds: float = Field(
        default=5.0,
        gt=0,
        description="A venue silent for longer is marked stale and leaves the consolidated book",
    )
    book_depth_max: int = Field(default=100, ge=1, description="Deepest GET /v1/book answer")
    log_level: str = Field(default="info", description="uvicorn log level")

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :])
        return None
