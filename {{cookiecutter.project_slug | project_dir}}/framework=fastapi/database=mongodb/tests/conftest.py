"""Fixtures: `settings` and `client` need no server; the `mongodb_*` ones need MONGODB_URL.

Without MONGODB_URL every test that asks for a `mongodb_*` fixture is skipped with the reason;
the others still run, against a server that is not there.
"""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from {{ cookiecutter.package_name }}.core.settings import Settings
{% if cookiecutter.websockets == "yes" -%}
from tests.redis_server import require_redis
{% endif -%}
from tests.support import (
    NO_SERVER,
    SERVER_URL,
    UNREACHABLE_MONGODB_URL,
    drop_database,
    new_database_name,
    run_migrate,
    serve,
)


@pytest.fixture
def settings() -> Settings:
    """Validation, probes and errors: nothing here reaches a database."""
    return Settings(
        mongodb_url=UNREACHABLE_MONGODB_URL,
        mongodb_timeout=0.5,
        ready_timeout=1.0,
        log_format="json",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as client:
        yield client


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    if SERVER_URL is None:
        pytest.skip(NO_SERVER)
    return SERVER_URL


@pytest.fixture
def mongodb_empty_database(mongodb_url: str) -> Iterator[str]:
    name = new_database_name()
    yield name
    drop_database(mongodb_url, name)


@pytest.fixture(scope="session")
def mongodb_database(mongodb_url: str) -> Iterator[str]:
    """A database of this test run's own, set up by the migrate command."""
    name = new_database_name()
    try:
        result = run_migrate(mongodb_url, name)
        assert result.returncode == 0, result.stdout + result.stderr
        yield name
    finally:
        drop_database(mongodb_url, name)


@pytest.fixture
async def mongodb_client(
    mongodb_url: str, mongodb_database: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        mongodb_url=mongodb_url, mongodb_database=mongodb_database, log_format="json"
    )
    async with serve(settings) as client:
        yield client
{%- if cookiecutter.websockets == "yes" %}


@pytest.fixture(scope="session", autouse=True)
def redis_url() -> str:
    """Every app here runs the channels' hub, on the Redis at REDIS_URL."""
    return require_redis()
{%- endif %}
