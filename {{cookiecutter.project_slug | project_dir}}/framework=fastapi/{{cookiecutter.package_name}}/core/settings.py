"""Configuration, read once from environment variables (and a local `.env` file in development)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from dotenv import load_dotenv
from pydantic import Field{% if cookiecutter.database == "postgresql" %}, field_validator{% endif %}
from pydantic_settings import BaseSettings, SettingsConfigDict

# The checkout's `.env` (never in the image) goes into the environment when this module is first
# imported, so every entry point sees the same values: the app, gunicorn.conf.py, `make run`,
# migrations and the tests. The real environment wins over it.
load_dotenv(Path(__file__).resolve().parents[2] / ".env")
{%- if cookiecutter.database == "postgresql" %}

# The project's own database on the local server; `make migrate` creates it when it is missing.
LOCAL_DATABASE = "{{ cookiecutter.package_name }}"
{%- endif %}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    app_name: str = "{{ cookiecutter.project_slug }}"
    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    # "auto" renders JSON when stdout is not a terminal, which is how containers run.
    log_format: Literal["auto", "json", "console"] = "auto"
    # /docs, /redoc and /openapi.json; unset: served in development only.
    api_docs: bool | None = None
{% if cookiecutter.database == "postgresql" %}
    database_url: str = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{LOCAL_DATABASE}"
    # Connections a worker keeps open, and opens at most: a connection opened beyond the pool
    # is closed as soon as it is returned, so under load each overflow request paid a connect.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=0, ge=0)
    database_pool_timeout: float = Field(default=5.0, gt=0)
    database_connect_timeout: float = Field(default=3.0, gt=0)
    database_statement_timeout_ms: int = Field(default=15_000, ge=0)

    ready_timeout: float = Field(default=1.0, gt=0)
{%- if cookiecutter.worker == "rabbitmq" %}

    # The event worker (`python -m {{ cookiecutter.package_name }}.worker`); dead letters go to
    # "<EVENTS_QUEUE>.dead-letter".
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    events_queue: str = Field(default="item-events", min_length=1)
{%- elif cookiecutter.worker == "kafka" %}

    # The event worker (`python -m {{ cookiecutter.package_name }}.worker`); dead letters go to
    # "<EVENTS_TOPIC>.dead-letter". BROKER_URL: bootstrap servers, host:port[,host:port...].
    broker_url: str = "127.0.0.1:9092"
    events_topic: str = Field(default="item-events", min_length=1)
    kafka_consumer_group: str = Field(default="{{ cookiecutter.project_slug }}-worker", min_length=1)
    kafka_topic_partitions: int = Field(default=6, ge=1)
{%- endif %}
{%- if cookiecutter.worker != "none" %}
    consumer_port: int = Field(default=8001, ge=1, le=65535)
    consumer_prefetch: int = Field(default=10, ge=1)
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_graceful_timeout: float = Field(default=20.0, ge=0)
    outbox_poll_interval: float = Field(default=0.5, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1)
{%- endif %}
{%- elif cookiecutter.database == "mongodb" %}
    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = Field(default="{{ cookiecutter.package_name }}", min_length=1)
    mongodb_max_pool_size: int = Field(default=10, ge=1)
    # Waiting for a server included, so an outage fails fast instead of after PyMongo's 30 s.
    mongodb_timeout: float = Field(default=5.0, gt=0)

    ready_timeout: float = Field(default=1.0, gt=0)
{%- endif %}
{%- if cookiecutter.websockets == "yes" %}
{%- if cookiecutter.database == "none" %}
    ready_timeout: float = Field(default=1.0, gt=0)
{%- endif %}

    # The channels' Redis (README, "Real-time channels").
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Seconds to connect and to answer a command: publishing to an unreachable Redis fails fast.
    redis_timeout: float = Field(default=2.0, gt=0)
    # Larger frames and messages are refused: closed with 1009, or 413 over HTTP.
    ws_max_message_bytes: int = Field(default=65_536, gt=0)
    # Messages waiting for one client before it is closed with 4008 (too slow).
    ws_send_queue_size: int = Field(default=256, ge=1)
    # Seconds between pings, below the 60 s that proxies let a silent connection idle; a client
    # that does not answer one within WS_PING_TIMEOUT is dropped.
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    # Seconds a connection lasts at most (less up to 10%), so clients spread onto new pods.
    ws_max_connection_age: float = Field(default=3600.0, gt=0)
    # Per worker process; beyond it new clients are closed with 1013 (try again later).
    ws_max_connections: int = Field(default=8_000, ge=1)
    # Off: compression costs CPU on every broadcast and memory on every connection.
    ws_per_message_deflate: bool = False
{%- endif %}
{%- set inference = project_facts(cookiecutter).inference %}
{%- if inference %}
{%- if cookiecutter.database != "none" or cookiecutter.websockets == "yes" %}
{# a blank line after the settings above #}
{%- endif %}
    # The model (README, "Model inference"): a relative path is from the working directory, /app
    # in the image. A file whose checksum differs is refused at start-up.
    model_path: Path = Path("{{ inference.model_file }}")
    model_name: str = Field(default="iris", min_length=1)
    model_version: str = Field(default="1", min_length=1)
    model_sha256: str = Field(
        default="{{ inference.model_sha256 }}",
        pattern=r"^[0-9a-f]{64}$",
    )
    # The output tensor the API answers with, one row per instance.
    model_output: str = Field(default="probabilities", min_length=1)
    # Inferences a worker runs at once, each on INFERENCE_THREADS threads (concurrency.py), and
    # requests it lets wait for one; more are answered 503 at once.
    inference_concurrency: int = Field(default={{ inference.concurrency }}, ge=1)
    inference_queue_size: int = Field(default={{ inference.queue_size }}, ge=0)
    inference_max_batch_size: int = Field(default={{ inference.max_batch_size }}, ge=1)
{%- endif %}
    # Seconds a worker keeps serving after SIGTERM while /ready reports 503.
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_header_bytes: int = Field(default=16 * 1024, gt=0)
    max_query_bytes: int = Field(default=4 * 1024, gt=0)
{%- if cookiecutter.database == "none" %}
    # Items each worker keeps in memory; creating more answers 507.
    max_items: int = Field(default=10_000, ge=0)
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
    migration_lock_timeout: float = Field(default=300.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def use_asyncpg_driver(cls, url: str) -> str:
        """Accept the plain `postgresql://` URLs that managed databases hand out."""
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        return url
{%- endif %}

    @property
    def serve_api_docs(self) -> bool:
        if self.api_docs is None:
            return self.environment == "development"
        return self.api_docs


@lru_cache
def get_settings() -> Settings:
    return Settings()
