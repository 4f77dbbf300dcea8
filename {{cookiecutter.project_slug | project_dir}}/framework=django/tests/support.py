"""Helpers for tests that run the project as its deployment does: manage.py and gunicorn."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
{%- if cookiecutter.database == "postgresql" %}
import uuid
{%- endif %}
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
{%- if cookiecutter.database == "postgresql" %}
from urllib.parse import urlsplit
{%- endif %}

{% if cookiecutter.database == "postgresql" -%}
import psycopg
{% endif -%}
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
{%- if cookiecutter.database == "postgresql" %}
SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Port 1 on loopback refuses connections: a database that is down.
UNREACHABLE_DATABASE_URL = "postgresql://postgres@127.0.0.1:1/none"
{%- endif %}
MANAGE = [sys.executable, "manage.py"]
{%- if cookiecutter.database == "postgresql" %}


def _admin(statement: str) -> None:
    try:
        conn = psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at TEST_DATABASE_URL={SERVER_URL!r}: {exc}", pytrace=False
        )
    with conn:
        conn.execute(statement)


def database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    return urlsplit(SERVER_URL)._replace(path=f"/{name}").geturl()


def create_database() -> str:
    """Create an empty database on the test server and return its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
{%- endif %}


{% if cookiecutter.database == "postgresql" -%}
def app_env(database_url: str, **overrides: str) -> dict[str, str]:
{%- else -%}
def app_env(**overrides: str) -> dict[str, str]:
{%- endif %}
    """The environment of a deployed process: the app's settings module, JSON logs."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "{{ cookiecutter.package_name }}.settings",
{%- if cookiecutter.database == "postgresql" %}
        "DATABASE_URL": database_url,
{%- endif %}
        "LOG_FORMAT": "json",
        **overrides,
    }


def run_manage(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed command line
        [*MANAGE, *args],
        cwd=PROJECT_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as JSON; a line that is not JSON fails the test."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    url: str
    log: Path

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Response:
        request = urllib.request.Request(self.url + path, headers=dict(headers or {}))  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return Response(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())

    def events(self) -> list[dict[str, Any]]:
        return json_lines(self.log.read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
{%- if cookiecutter.database == "postgresql" %}
def serve(database_url: str, log: Path, **env: str) -> Iterator[Server]:
{%- else %}
def serve(log: Path, **env: str) -> Iterator[Server]:
{%- endif %}
    """gunicorn with gunicorn.conf.py, as the container starts it, until the block ends."""
    port = free_port()
    # Its own metrics port too: two servers on one machine cannot share one.
    metrics_port = str(free_port())
    server = Server(f"http://127.0.0.1:{port}", log)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=PROJECT_ROOT,
{%- if cookiecutter.database == "postgresql" %}
            env=app_env(
                database_url, PORT=str(port), METRICS_PORT=metrics_port, WEB_CONCURRENCY="1", **env
            ),
{%- else %}
            env=app_env(PORT=str(port), METRICS_PORT=metrics_port, WEB_CONCURRENCY="1", **env),
{%- endif %}
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not is_up(server):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def is_up(server: Server) -> bool:
    try:
        return server.get("/health").status == 200
    except OSError:
        return False
