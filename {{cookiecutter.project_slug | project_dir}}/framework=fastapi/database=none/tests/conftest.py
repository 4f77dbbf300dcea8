from collections.abc import AsyncIterator

import httpx
import pytest

from {{ cookiecutter.package_name }}.core.settings import Settings
from tests.support import serve


@pytest.fixture
def settings() -> Settings:
    return Settings(log_format="json")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as client:
        yield client
