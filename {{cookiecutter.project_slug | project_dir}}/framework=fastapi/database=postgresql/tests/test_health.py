import time

import httpx

from {{ cookiecutter.package_name }}.core.settings import Settings
from tests.support import UNREACHABLE_DATABASE_URL, serve


async def test_health_answers_without_touching_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_not_ready_and_fast_when_the_database_is_unreachable() -> None:
    settings = Settings(database_url=UNREACHABLE_DATABASE_URL, log_format="json", ready_timeout=1.0)
    async with serve(settings) as client:
        started = time.monotonic()
        ready = await client.get("/ready")
        elapsed = time.monotonic() - started
        health = await client.get("/health")
        items = await client.get("/api/v1/items")

    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert "database" in ready.json()["checks"]
    assert elapsed < settings.ready_timeout + 1
    assert health.status_code == 200
    assert items.status_code == 503
    assert items.json() == {"detail": "Database unavailable, try again later"}
