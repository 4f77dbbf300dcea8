"""Configuration, read once from environment variables (and a local `.env` file in development)."""

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_name: str = "{{ cookiecutter.project_slug }}"
    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    # "auto" renders JSON when stdout is not a terminal, which is how containers run.
    log_format: Literal["auto", "json", "console"] = "auto"

    # Seconds a worker keeps serving after SIGTERM while /ready reports 503.
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_header_bytes: int = Field(default=16 * 1024, gt=0)
    max_query_bytes: int = Field(default=4 * 1024, gt=0)


@lru_cache
def get_settings() -> Settings:
    return Settings()
