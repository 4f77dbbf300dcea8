import json

import pytest

from {{ cookiecutter.package_name }}.core.settings import Settings
from tests.support import serve


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


async def test_request_log_lines_are_json_and_carry_the_request_id(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    async with serve(settings) as client:
        capfd.readouterr()
        # A path no route serves: the 404 needs no database, whichever the project uses.
        response = await client.get("/api/v1/nowhere", headers={"X-Request-ID": "a" * 32})

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "a" * 32
    events = json_lines(capfd.readouterr().out)
    access = [event for event in events if event["event"] == "request"]
    assert len(access) == 1
    assert access[0] == {
        **access[0],
        "method": "GET",
        "path": "/api/v1/nowhere",
        "status": 404,
        "request_id": "a" * 32,
        "level": "info",
    }
    assert isinstance(access[0]["duration_ms"], float)


async def test_a_request_id_is_generated_when_the_client_sends_none(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    async with serve(settings) as client:
        capfd.readouterr()
        response = await client.get("/health")

    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32
    access = [event for event in json_lines(capfd.readouterr().out) if event["event"] == "request"]
    assert [event["request_id"] for event in access] == [request_id]
