"""A pod that a handful of sockets and a locked table cannot starve.

The service runs as its container does (the Dockerfile's CMD with gunicorn.conf.py), one worker
as under the pod's 1-CPU limit, against the real PostgreSQL. Sockets that send their headers
slowly, idle keep-alive connections and requests stuck behind a locked table come at it at once,
as an attacker on the cluster network could send them; the kubelet's probes must keep answering
and every stuck request must end in a 503 within the budget the README documents.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import resource
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit import deployment
from testkit.deployment import Deployed
from testkit.services import Service, database_url, psql

pytestmark = pytest.mark.reliability

deployed_projects = deployment.deployed_projects
deployed = deployment.deployed
migrated_database = deployment.migrated_database
service_factory = deployment.service_factory

SLOW_HEADER_SOCKETS = 300
IDLE_CONNECTIONS = 1000
BLOCKED_REQUESTS = 40
ITEMS = "/api/v1/items"
ITEMS_TABLE = {"fastapi": "items", "django": "items_item"}
# The one setting changed from the defaults: statements give up sooner, so the test is short.
STATEMENT_TIMEOUT = 3.0
# What a stuck request may wait for before its statement runs, as `.env.example` documents
# each: a connection (and, for Django's threads, a free thread first).
WAITS = {
    "fastapi": ["DATABASE_POOL_TIMEOUT"],
    "django": ["REQUEST_QUEUE_TIMEOUT", "DATABASE_POOL_TIMEOUT"],
}
SLACK = 1.0
HEALTH_WITHIN = 1.0
# Sockets of this process and of the service (which inherits the limit), with room to spare.
OPEN_FILES = 4096


def documented_defaults(project: Path) -> dict[str, str]:
    lines = (project / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.fixture(autouse=True)
def enough_open_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OPEN_FILES:
        pytest.fail(f"the test needs {OPEN_FILES} open files; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < OPEN_FILES:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class Probe:
    path: str
    started: float
    seconds: float
    status: int | None
    body: bytes = b""


@dataclass
class Prober:
    """The kubelet: /health and /ready, each on a connection of its own, every 250 ms."""

    port: int
    timeout: float
    probes: list[Probe] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for path in ("/health", "/ready"):
                self.probes.append(probe(self.port, path, self.timeout))
            self.stop.wait(0.25)

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def probe(port: int, path: str, timeout: float) -> Probe:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return Probe(path, started, time.monotonic() - started, response.status, body)
    except (OSError, http.client.HTTPException):
        return Probe(path, started, time.monotonic() - started, None)
    finally:
        conn.close()


class SocketFlood:
    """Sockets that hold connections open: some trickle a header byte a second, some sit idle.

    Bounded: a fixed number of loopback sockets, all closed when the block ends.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.slow: list[socket.socket] = []
        self.idle: list[socket.socket] = []
        self.stop = threading.Event()
        self.trickler = threading.Thread(target=self.trickle, daemon=True)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        return sock

    def open_slow_headers(self, count: int) -> None:
        for number in range(count):
            sock = self.connect()
            sock.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow-%d: " % number)
            self.slow.append(sock)
        self.trickler.start()

    def trickle(self) -> None:
        while not self.stop.wait(1.0):
            for sock in self.slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    def open_idle(self, count: int) -> None:
        """Keep-alive connections after one answered request; the answers are never read."""
        for _ in range(count):
            sock = self.connect()
            sock.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.idle.append(sock)

    def answered(self, within: float = 3.0) -> int:
        """How many idle connections have their 200 by now, or at the latest `within` seconds."""
        pending = {sock.fileno(): sock for sock in self.idle}
        count = 0
        deadline = time.monotonic() + within
        with selectors.DefaultSelector() as selector:
            for sock in pending.values():
                selector.register(sock, selectors.EVENT_READ)
            while pending and (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    sock = pending.pop(key.fd)
                    selector.unregister(sock)
                    with contextlib.suppress(OSError):
                        count += sock.recv(12).startswith(b"HTTP/1.1 200")
        return count

    def __enter__(self) -> SocketFlood:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.trickler.is_alive():
            self.trickler.join(timeout=10)
        for sock in self.slow + self.idle:
            sock.close()


@contextlib.contextmanager
def locked_table(database: str, table: str) -> Iterator[None]:
    """An ACCESS EXCLUSIVE lock on `table`, held by a psql session of the test's own."""
    session = subprocess.Popen(
        ["psql", database_url(database), "-XAtq"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert session.stdin is not None
    try:
        session.stdin.write(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\n")
        session.stdin.flush()
        granted = (
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "  # noqa: S608
            f"WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
        )
        deadline = time.monotonic() + 30
        while psql(granted, database=database) == "0":
            assert time.monotonic() < deadline, f"no lock on {table}"
            time.sleep(0.05)
        yield
    finally:
        session.kill()
        session.wait(timeout=30)


@dataclass(frozen=True)
class Answer:
    seconds: float
    status: int | None
    content_type: str | None
    body: bytes
    retry_after: str | None


def blocked_request(port: int, timeout: float) -> Answer:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", ITEMS)
        response = conn.getresponse()
        body = response.read()
        return Answer(
            time.monotonic() - started,
            response.status,
            response.getheader("Content-Type"),
            body,
            response.getheader("Retry-After"),
        )
    except (OSError, http.client.HTTPException) as exc:
        return Answer(time.monotonic() - started, None, None, repr(exc).encode(), None)
    finally:
        conn.close()


def test_probes_answer_and_stuck_requests_fail_fast_under_socket_floods_and_a_locked_table(
    deployed: Deployed, service_factory: Callable[..., Service], migrated_database: str
) -> None:
    framework = deployed.framework
    defaults = documented_defaults(deployed.project)
    ready_timeout = float(defaults["READY_TIMEOUT"])
    budget = sum(float(defaults[name]) for name in WAITS[framework]) + STATEMENT_TIMEOUT
    service = service_factory(
        database_url(migrated_database),
        WEB_CONCURRENCY="1",
        DATABASE_STATEMENT_TIMEOUT_MS=str(int(STATEMENT_TIMEOUT * 1000)),
    )
    assert service.status(ITEMS) == 200

    with (
        Prober(service.port, timeout=ready_timeout + 2) as prober,
        SocketFlood(service.port) as flood,
    ):
        flood.open_slow_headers(SLOW_HEADER_SOCKETS)
        flood.open_idle(IDLE_CONNECTIONS)
        time.sleep(2)
        with (
            locked_table(migrated_database, ITEMS_TABLE[framework]),
            ThreadPoolExecutor(BLOCKED_REQUESTS) as pool,
        ):
            answers = list(
                pool.map(
                    lambda _: blocked_request(service.port, budget + 5), range(BLOCKED_REQUESTS)
                )
            )
        idle_answered = flood.answered()

    health = [p for p in prober.probes if p.path == "/health"]
    ready = [p for p in prober.probes if p.path == "/ready"]
    late_health = [
        (round(p.seconds, 2), p.status)
        for p in health
        if p.status != 200 or p.seconds > HEALTH_WITHIN
    ]
    late_ready = [
        (round(p.seconds, 2), p.status)
        for p in ready
        if p.status is None or p.seconds > ready_timeout + 0.5
    ]
    assert late_health == [], (
        f"{len(late_health)} of {len(health)} /health probes failed or were late"
    )
    assert late_ready == [], f"{len(late_ready)} of {len(ready)} /ready probes failed or were late"
    for answer in ready:
        assert json.loads(answer.body)["status"] in ("ready", "unavailable")
    assert len(health) >= 8

    # Every stuck request: a 503 with a JSON body, within the waits and the statement timeout.
    summary = sorted((round(a.seconds, 1), a.status) for a in answers)
    assert all(a.status == 503 for a in answers), summary
    assert max(a.seconds for a in answers) < budget + SLACK, (budget, summary)
    for answer in answers:
        assert answer.content_type == "application/json"
        assert set(json.loads(answer.body)) == {"detail"}
        assert answer.retry_after is not None

    # The keep-alive clients were served too, each on its own connection.
    assert idle_answered == IDLE_CONNECTIONS
    assert service.status(ITEMS) == 200
    service.log_events()  # every line is JSON
