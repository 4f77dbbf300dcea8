from pathlib import Path

from tests.support import serve


{% if cookiecutter.database == "postgresql" -%}
def test_every_line_is_json_and_request_lines_carry_the_request_id(
    migrated_database: str, tmp_path: Path
) -> None:
    with serve(migrated_database, tmp_path / "server.log") as server:
{%- else -%}
def test_every_line_is_json_and_request_lines_carry_the_request_id(tmp_path: Path) -> None:
    with serve(tmp_path / "server.log") as server:
{%- endif %}
        response = server.get("/api/v1/items/424242", headers={"X-Request-ID": "a" * 32})

    # Parsing every line proves gunicorn's own lines go through the same JSON pipeline.
    events = server.events()
    assert response.status == 404
    assert response.headers["X-Request-ID"] == "a" * 32
    assert any(event["logger"] == "gunicorn.error" for event in events)
    api_events = [event for event in events if event.get("request") == "GET /api/v1/items/424242"]
    assert [event["event"] for event in api_events] == ["request_started", "request_finished"]
    assert {event["request_id"] for event in api_events} == {"a" * 32}
    assert api_events[1] == {**api_events[1], "code": 404, "level": "warning"}


{% if cookiecutter.database == "postgresql" -%}
def test_a_request_id_is_generated_when_the_client_sends_none(
    migrated_database: str, tmp_path: Path
) -> None:
    with serve(migrated_database, tmp_path / "server.log") as server:
{%- else -%}
def test_a_request_id_is_generated_when_the_client_sends_none(tmp_path: Path) -> None:
    with serve(tmp_path / "server.log") as server:
{%- endif %}
        response = server.get("/api/v1/items")

    request_id = response.headers["X-Request-ID"]
    assert response.status == 200
    assert len(request_id) == 36
    api_events = [event for event in server.events() if event.get("request") == "GET /api/v1/items"]
    assert [event["event"] for event in api_events] == ["request_started", "request_finished"]
    assert {event["request_id"] for event in api_events} == {request_id}
