import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tests.support import UNREACHABLE_DATABASE_URL, serve


def test_health_answers_without_touching_the_database(client: Client) -> None:
    # No `db` fixture: pytest-django fails a test that queries the database without one.
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_when_the_database_answers(client: Client) -> None:
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


@override_settings(ALLOWED_HOSTS=["orders.example.com"])
def test_probes_answer_whatever_the_host_header(client: Client) -> None:
    # Kubelet sends the pod's IP as the Host; everything else keeps ALLOWED_HOSTS.
    probe = client.get("/health", HTTP_HOST="10.1.2.3:8000")
    api = client.get("/api/v1/items", HTTP_HOST="10.1.2.3:8000")

    assert probe.status_code == 200
    assert api.status_code == 400
    assert api.json() == {"detail": "Bad request"}


def test_not_ready_and_fast_when_the_database_is_down(tmp_path: Path) -> None:
    with serve(UNREACHABLE_DATABASE_URL, tmp_path / "server.log", READY_TIMEOUT="1.0") as server:
        started = time.monotonic()
        ready = server.get("/ready")
        elapsed = time.monotonic() - started
        health = server.get("/health")
        # A session cookie must not make anything query the database before the view does.
        items = server.get("/api/v1/items", headers={"Cookie": "sessionid=" + "a" * 32})

    assert ready.status == 503
    assert ready.json() == {"status": "unavailable", "checks": {"database": "OperationalError"}}
    assert elapsed < 2
    assert health.status == 200
    assert items.status == 503
    assert items.json() == {"detail": "Database unavailable, try again later"}
    assert items.headers["Retry-After"] == "1"


@pytest.fixture
def silent_database_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a database that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_ready_answers_within_its_time_box_when_the_database_hangs(
    silent_database_port: int, tmp_path: Path
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_database_port}/none"
    with serve(url, tmp_path / "server.log", READY_TIMEOUT="0.5") as server:
        started = time.monotonic()
        ready = server.get("/ready")
        elapsed = time.monotonic() - started

    assert ready.status == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "no answer within 0.5s"},
    }
    assert elapsed < 1.5
