"""Tests run against a real PostgreSQL server, in throw-away databases created for them.

The server comes from TEST_DATABASE_URL (default: local trust auth as `postgres`). Only the
databases this suite creates are ever written to, and they are dropped at the end.
"""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from {{ cookiecutter.package_name }}.core.settings import Settings
{% if cookiecutter.websockets == "yes" -%}
from tests.redis_server import require_redis
{% endif -%}
from tests.support import create_database, drop_database, run_migrate, serve


@pytest.fixture
def empty_database() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = create_database()
    try:
        result = run_migrate(url)
        assert result.returncode == 0, result.stdout + result.stderr
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_format="json")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as client:
        yield client
{%- if cookiecutter.websockets == "yes" %}


@pytest.fixture(scope="session", autouse=True)
def redis_url() -> str:
    """Every app here runs the channels' hub, on the Redis at REDIS_URL."""
    return require_redis()
{%- endif %}
