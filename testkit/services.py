"""Run a rendered project the way its container does, and the tools to push it around.

Everything here targets loopback only, and every load is bounded in requests and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# The channels' Redis (websockets=yes); tests/run.sh starts the local server when it is down.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(sql: str, database: str = "postgres") -> str:
    """Run SQL through the server's own client, as the superuser the tests are given."""
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
    result = subprocess.run(
        ["psql", url, "-XAtqc", sql], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh database; yields its name and drops it afterwards."""
    name = f"tpl_{uuid.uuid4().hex[:12]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(name: str, port: int | None = None) -> str:
    base = POSTGRES_URL.rsplit("/", 1)[0]
    if port is not None:
        base = base.rsplit(":", 1)[0] + f":{port}"
    return f"{base}/{name}"


def container_command(project: Path) -> list[str]:
    """The Dockerfile's exec-form CMD, or gunicorn with the project's config when there is none."""
    dockerfile = project / "Dockerfile"
    if dockerfile.is_file():
        for line in reversed(dockerfile.read_text().splitlines()):
            if line.startswith("CMD "):
                return json.loads(line.removeprefix("CMD "))
    return ["gunicorn", "-c", "gunicorn.conf.py"]


def migrate_command(project: Path) -> list[str]:
    """The migration initContainer's command, exactly as the rendered Deployment declares it."""
    for path in sorted((project / "k8s").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or document.get("kind") != "Deployment":
                continue
            for container in document["spec"]["template"]["spec"].get("initContainers", []):
                if container["name"] == "migrate":
                    return [*container.get("command", []), *container.get("args", [])]
    raise AssertionError(f"no 'migrate' initContainer in {project / 'k8s'}")


def pod_environment(framework: str) -> dict[str, str]:
    """What the Deployment gives every pod besides DATABASE_URL, with loopback host names."""
    env = {"ENVIRONMENT": "production", "LOG_FORMAT": "json"}
    if framework == "django":
        env |= {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    return env


def collect_static(project: Path, venv: Path) -> None:
    """The Dockerfile's Django build step: the image carries the collected static files."""
    if not (project / "manage.py").is_file():
        return
    collected = subprocess.run(
        in_venv(venv, ["python", "manage.py", "collectstatic", "--noinput"]),
        cwd=project,
        env={
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "ENVIRONMENT": "development",
            "SECRET_KEY": "collectstatic-only",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr


def in_venv(venv: Path, command: list[str]) -> list[str]:
    executable = venv / "bin" / command[0]
    return [str(executable) if executable.exists() else command[0], *command[1:]]


@dataclass
class Service:
    """A gunicorn master started from a rendered project, with its log on disk."""

    project: Path
    venv: Path
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    # gunicorn's master serves /metrics there; two services on one machine cannot share one.
    metrics_port: int = field(default_factory=free_port)
    # Another program to run in the project directory (the benchmarks' bare apps), and its probe.
    command: list[str] | None = None
    ready_path: str = "/ready"
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Service:
        env = {
            **os.environ,
            "PATH": f"{self.venv / 'bin'}:{os.environ['PATH']}",
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "LOG_FORMAT": "json",
            **self.env,
        }
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            in_venv(self.venv, self.command or container_command(self.project)),
            cwd=self.project,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        ready = self.ready_path
        self.wait_until(lambda: self.status(ready) == 200, timeout, f"{ready} to answer 200")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def wait_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"service exited ({self.process.returncode}) waiting for {what}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if condition():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log_tail()}")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def status(self, path: str) -> int:
        return self.request("GET", path)[0]

    def get(self, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Status, headers and body of one GET on a connection of its own."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def worker_pids(self) -> set[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def log_lines(self) -> list[str]:
        self.log.flush()
        return self.log_path.read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def log_events(self) -> list[dict]:
        """Every log line, parsed; a line that is not one JSON object fails the test."""
        events = []
        for number, line in enumerate(self.log_lines(), 1):
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssertionError(f"log line {number} is not JSON: {line!r}") from exc
            assert isinstance(event, dict), f"log line {number} is not an object: {line!r}"
            events.append(event)
        return events


@dataclass
class LoadResult:
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    completed_after: dict[float, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


class Load:
    """Bounded keep-alive load from many threads, like clients behind a load balancer.

    Clients stop sending when `stop_sending` is set (the balancer has removed the endpoint);
    requests already sent must still succeed.
    """

    def __init__(self, port: int, paths: list[str], clients: int, max_requests: int) -> None:
        self.port = port
        self.paths = paths
        self.clients = clients
        self.max_requests = max_requests
        self.stop_sending = threading.Event()
        self.result = LoadResult()
        self.lock = threading.Lock()
        self.success_times: list[float] = []
        self.threads = [threading.Thread(target=self.client, args=(n,)) for n in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_sending.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def client(self, number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for count in range(self.max_requests):
            if self.stop_sending.is_set():
                break
            path = self.paths[(number + count) % len(self.paths)]
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.result.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                conn.close()
                continue
            with self.lock:
                self.result.statuses[response.status] = (
                    self.result.statuses.get(response.status, 0) + 1
                )
                if response.status == 200:
                    self.success_times.append(time.monotonic())
        conn.close()


class TcpProxy:
    """A loopback TCP proxy to PostgreSQL that can cut, blackhole and restore the database."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.mode = "forward"
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def start(self) -> None:
        self.call(self._close())
        self.mode = "forward"
        self.call(self._listen())

    def cut(self) -> None:
        """The database is gone: closed port, existing connections dropped."""
        self.call(self._close())

    def blackhole(self) -> None:
        """The database host accepts connections and never answers."""
        self.call(self._close())
        self.mode = "blackhole"
        self.call(self._listen())

    def shutdown(self) -> None:
        self.call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.connections):
            writer.transport.abort()
        self.connections.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        if self.mode == "blackhole":
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self.connections.add(upstream_writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


def raw_http(port: int, payload: bytes, timeout: float = 10) -> int:
    """Send bytes as they are and return the response's status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before it has read all of an oversized request.
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].decode()
    assert status_line.startswith("HTTP/1.1 "), f"no HTTP response: {data[:200]!r}"
    return int(status_line.split()[1])
