{% if cookiecutter.database == "mongodb" -%}
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from {{ cookiecutter.package_name }}.core.settings import Settings
from tests.support import serve
{%- else -%}
import time

import httpx

from {{ cookiecutter.package_name }}.core.settings import Settings
from tests.support import UNREACHABLE_DATABASE_URL, serve
{%- endif %}


async def test_health_answers_without_touching_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

{% if cookiecutter.database == "mongodb" %}
async def test_ready_when_the_database_answers(mongodb_client: httpx.AsyncClient) -> None:
    response = await mongodb_client.get("/ready")
{%- else %}
async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
{%- endif %}

    assert response.status_code == 200
{%- if cookiecutter.websockets == "yes" and cookiecutter.inference == "yes" %}
    checks = {"database": "ok", "redis": "ok", "model": "ok"}
    assert response.json() == {"status": "ready", "checks": checks}
{%- elif cookiecutter.websockets == "yes" %}
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
{%- elif cookiecutter.inference == "yes" %}
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "model": "ok"}}
{%- else %}
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}
{%- endif %}

{% if cookiecutter.database == "mongodb" %}
async def test_not_ready_and_fast_when_the_database_is_unreachable(settings: Settings) -> None:
{%- else %}
async def test_not_ready_and_fast_when_the_database_is_unreachable() -> None:
    settings = Settings(database_url=UNREACHABLE_DATABASE_URL, log_format="json", ready_timeout=1.0)
{%- endif %}
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
{%- if cookiecutter.database == "mongodb" %}
    assert items.headers["Retry-After"] == "1"


@pytest.fixture
def silent_database_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a database that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


async def test_ready_answers_within_its_time_box_when_the_database_hangs(
    settings: Settings, silent_database_port: int
) -> None:
    hanging = settings.model_copy(
        update={
            "mongodb_url": f"mongodb://127.0.0.1:{silent_database_port}/?directConnection=true",
            "ready_timeout": 0.5,
        }
    )
    async with serve(hanging) as client:
        started = time.monotonic()
        ready = await client.get("/ready")
        elapsed = time.monotonic() - started

    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "no answer within 0.5s"},
    }
    # Well under MONGODB_TIMEOUT (5 s), with room for a loaded CI machine.
    assert elapsed < 3
{%- endif %}
