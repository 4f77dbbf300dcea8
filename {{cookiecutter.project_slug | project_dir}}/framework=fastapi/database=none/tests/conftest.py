from collections.abc import AsyncIterator

import httpx
import pytest

from {{ cookiecutter.package_name }}.core.settings import Settings
{% if cookiecutter.websockets == "yes" -%}
from tests.redis_server import require_redis
{% endif -%}
from tests.support import serve


@pytest.fixture
def settings() -> Settings:
    return Settings(log_format="json")


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
