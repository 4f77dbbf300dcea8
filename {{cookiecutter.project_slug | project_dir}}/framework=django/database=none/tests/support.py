"""Helpers for tests that run the project as its deployment does: manage.py and gunicorn."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MANAGE = [sys.executable, "manage.py"]


def app_env(**overrides: str) -> dict[str, str]:
    """The environment of a deployed process: the app's settings module, JSON logs."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "{{ cookiecutter.package_name }}.settings",
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
def serve(log: Path, **env: str) -> Iterator[Server]:
    """gunicorn with gunicorn.conf.py, as the container starts it, until the block ends."""
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", log)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=PROJECT_ROOT,
            env=app_env(PORT=str(port), WEB_CONCURRENCY="1", **env),
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
