import httpx


async def test_health_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


{% if cookiecutter.websockets == "yes" -%}
async def test_ready_when_redis_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
{%- if cookiecutter.inference == "yes" %}
    assert response.json() == {"status": "ready", "checks": {"redis": "ok", "model": "ok"}}
{%- else %}
    assert response.json() == {"status": "ready", "checks": {"redis": "ok"}}
{%- endif %}
{%- elif cookiecutter.inference == "yes" -%}
async def test_ready_once_the_model_is_warm(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"model": "ok"}}
{%- else -%}
async def test_ready_checks_nothing_but_the_process(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {}}
{%- endif %}
