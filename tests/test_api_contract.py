"""The example API as its clients see it: the OpenAPI contract, error answers and HTTP methods.

Each test starts the rendered service exactly as its container does (testkit.services), against
the real PostgreSQL where the combination has one. The OpenAPI contract is checked with
schemathesis (`--checks all`) for each FastAPI database variant that has a server here
(PostgreSQL and none; there is no MongoDB server), and Django's API against the contract in
tests/contracts/, which it must honour the same way.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.services import (
    Service,
    collect_static,
    database_url,
    in_venv,
    migrate_command,
    pod_environment,
    psql,
    throwaway_database,
)
from testkit.template import choice_options

pytestmark = pytest.mark.reliability

ITEMS = "/api/v1/items"
CONTRACTS = Path(__file__).parent / "contracts"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Bounded so the fuzzing stays a few seconds per service; the seed keeps CI reproducible.
FUZZ_OPTIONS = ["--checks", "all", "--max-examples", "25", "--seed", "14"]
FUZZ_TIMEOUT_SECONDS = 180


@dataclass(frozen=True)
class Deployed:
    framework: str
    database: str
    project: Path
    venv: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def deployments(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], Deployed]:
    cache: dict[tuple[str, str], Deployed] = {}

    def deploy(framework: str, database: str) -> Deployed:
        if (framework, database) not in cache:
            baked_project = baked(framework=framework, database=database)
            # A copy: collected static files stay out of the bake other tests read.
            project = tmp_path_factory.mktemp(f"{framework}-{database}") / baked_project.name
            shutil.copytree(baked_project, project)
            venv = project_venv(project)
            if "collectstatic" in (project / "Dockerfile").read_text():
                collect_static(project, venv)
            env = pod_environment(framework)
            cache[framework, database] = Deployed(framework, database, project, venv, env)
        return cache[framework, database]

    return deploy


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(deployed: Deployed, ready_path: str = "/ready", **env: str) -> Service:
        # No drain on stop: these tests ask for answers, not for shutdown (test_reliability does).
        settings = {**deployed.env, "WEB_CONCURRENCY": "1", "SHUTDOWN_DRAIN_SECONDS": "0", **env}
        service = Service(
            project=deployed.project,
            venv=deployed.venv,
            env=settings,
            log_path=tmp_path / f"service-{len(started)}.log",
            ready_path=ready_path,
        )
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


def migrate(deployed: Deployed, url: str) -> None:
    result = subprocess.run(
        in_venv(deployed.venv, migrate_command(deployed.project)),
        cwd=deployed.project,
        env={"PATH": f"{deployed.venv / 'bin'}:/usr/bin:/bin", **deployed.env, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def migrated_database() -> Iterator[str]:
    """A throw-away database name; migrated by the test for its own project."""
    with throwaway_database() as name:
        yield name


def service_for(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    framework: str,
    database: str,
    name: str | None = None,
    **env: str,
) -> Service:
    deployed = deployments(framework, database)
    if database == "postgresql":
        assert name is not None
        migrate(deployed, database_url(name))
        env = {"DATABASE_URL": database_url(name), **env}
    return start_service(deployed, **env)


def send(
    service: Service, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def json_error(status: int, headers: dict[str, str], body: bytes) -> dict:
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body)
    payload = json.loads(body)
    assert isinstance(payload.get("detail"), str), payload
    return payload


def raw_response(port: int, payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the whole response, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


# --- 1. Database failures: 503 JSON with Retry-After, and /ready says why -------------------


@contextlib.contextmanager
def table_locked(database: str, table: str, seconds: float) -> Iterator[None]:
    """Another session holds an ACCESS EXCLUSIVE lock on the table, as a long migration would."""
    holder = subprocess.Popen(
        [
            "psql",
            database_url(database),
            "-Xq",
            "-c",
            f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({seconds});",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        query = (
            "SELECT count(*) FROM pg_locks JOIN pg_class ON pg_class.oid = relation "  # noqa: S608 - our own table name
            f"WHERE relname = '{table}' AND mode = 'AccessExclusiveLock' AND granted"
        )
        while psql(query, database=database) != "1":
            assert time.monotonic() < deadline, "the lock was never taken"
            time.sleep(0.05)
        yield
    finally:
        holder.kill()
        holder.wait()


def test_fastapi_statement_timeout_is_a_json_503_with_retry_after(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
) -> None:
    service = service_for(
        deployments,
        start_service,
        "fastapi",
        "postgresql",
        migrated_database,
        DATABASE_STATEMENT_TIMEOUT_MS="300",
    )
    with table_locked(migrated_database, "items", seconds=10):
        answers = [send(service, "GET", ITEMS) for _ in range(3)]
        ready = send(service, "GET", "/ready")

    for status, headers, body in answers:
        assert status == 503, (status, headers, body)
        assert json_error(status, headers, body) == {
            "detail": "Database unavailable, try again later"
        }
        assert headers["retry-after"] == "1"
    # A lock held elsewhere is no reason to take this pod out of service.
    assert ready[0] == 200, ready


DATABASE_FAILURES = {
    # A secret rotated to a role the server does not know.
    "unknown role": (lambda name: database_url(name).replace("postgres@", "rotated@"), "rejected"),
    "missing database": (lambda name: database_url(name + "_gone"), "does not exist"),
}


@pytest.mark.parametrize("failure", sorted(DATABASE_FAILURES))
def test_fastapi_refused_database_is_a_json_503_and_ready_says_why(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
    failure: str,
) -> None:
    deployed = deployments("fastapi", "postgresql")
    url_for, reason = DATABASE_FAILURES[failure]
    service = start_service(deployed, ready_path="/health", DATABASE_URL=url_for(migrated_database))

    status, headers, body = send(service, "GET", ITEMS)
    ready_status, _, ready_body = send(service, "GET", "/ready")

    assert status == 503, (status, headers, body)
    assert json_error(status, headers, body) == {"detail": "Database unavailable, try again later"}
    assert headers["retry-after"] == "1"
    assert ready_status == 503
    assert reason in json.loads(ready_body)["checks"]["database"], ready_body


def test_fastapi_unmigrated_database_is_not_ready_and_a_json_503(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
) -> None:
    # The database exists and answers, but the migrations never ran.
    deployed = deployments("fastapi", "postgresql")
    service = start_service(
        deployed, ready_path="/health", DATABASE_URL=database_url(migrated_database)
    )

    ready_status, _, ready_body = send(service, "GET", "/ready")
    status, headers, body = send(service, "GET", ITEMS)

    assert ready_status == 503, ready_body
    assert json.loads(ready_body)["checks"] == {"database": "schema not migrated (no table items)"}
    assert status == 503, (status, headers, body)
    assert json_error(status, headers, body) == {"detail": "Database unavailable, try again later"}
    assert headers["retry-after"] == "1"


def test_fastapi_unexpected_error_is_a_json_500_logged_with_its_request_id(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
) -> None:
    service = service_for(deployments, start_service, "fastapi", "postgresql", migrated_database)
    # A rule the application does not know about: the insert fails with an error it cannot expect.
    psql(
        "ALTER TABLE items ADD CONSTRAINT no_boom CHECK (name <> 'boom')",
        database=migrated_database,
    )

    status, headers, body = send(service, "POST", ITEMS, b'{"name": "boom"}')

    assert status == 500, (status, headers, body)
    assert json_error(status, headers, body) == {"detail": "Internal server error"}
    assert b"Traceback" not in body
    request_id = headers["x-request-id"]
    errors = [event for event in service.log_events() if event.get("level") == "error"]
    assert [event.get("request_id") for event in errors] == [request_id], errors
    assert "CheckViolation" in json.dumps(errors[0]["exception"])
    assert send(service, "GET", ITEMS)[0] == 200


# --- 9. API documentation and HEAD -------------------------------------------------------------


@pytest.mark.parametrize("database", ["postgresql", "none"])
def test_fastapi_api_docs_are_off_in_production_unless_enabled(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
    database: str,
) -> None:
    production = service_for(deployments, start_service, "fastapi", database, migrated_database)
    documented = start_service(deployments("fastapi", database), **production.env, API_DOCS="true")

    for path in ("/docs", "/redoc", "/openapi.json"):
        status, headers, body = send(production, "GET", path)
        assert status == 404, (path, status)
        json_error(status, headers, body)
        assert send(documented, "GET", path)[0] == 200, path


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_probes_answer_head_like_get(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
    framework: str,
) -> None:
    service = service_for(deployments, start_service, framework, "postgresql", migrated_database)

    for path in ("/health", "/ready", ITEMS):
        get_status, get_headers, _ = send(service, "GET", path)
        status, headers, body = send(service, "HEAD", path)
        assert (status, body) == (get_status, b""), path
        assert headers["content-type"] == get_headers["content-type"], path


# --- 10. The server's own errors are JSON --------------------------------------------------------


MALFORMED = {
    "header without a colon": b"GET /health HTTP/1.1\r\nHost: localhost\r\nBroken header\r\n\r\n",
    "invalid request line": b"GET /health HTTP/9 junk\r\nHost: localhost\r\n\r\n",
    "invalid Content-Length": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n{}"
    ),
}


def test_fastapi_server_level_errors_are_json(
    deployments: Callable[[str, str], Deployed], start_service: Callable[..., Service]
) -> None:
    service = service_for(deployments, start_service, "fastapi", "none")

    answers = {name: raw_response(service.port, payload) for name, payload in MALFORMED.items()}
    answers["long request line"] = raw_response(
        service.port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )

    for name, (status, headers, body) in answers.items():
        assert 400 <= status < 500, (name, status, body)
        assert headers.get("content-type") == "application/json", (name, headers, body)
        assert isinstance(json.loads(body)["detail"], str), (name, body)
    assert send(service, "GET", "/health")[0] == 200


# --- 11. The contract, fuzzed; a bounded in-memory store ----------------------------------------


def fuzz(service: Service, schema: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            schema,
            "--url",
            f"http://127.0.0.1:{service.port}",
            *FUZZ_OPTIONS,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("database", ["postgresql", "none"])
def test_fastapi_openapi_contract_holds_under_fuzzing(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
    tmp_path: Path,
    database: str,
) -> None:
    service = service_for(
        deployments, start_service, "fastapi", database, migrated_database, API_DOCS="true"
    )

    result = fuzz(service, f"http://127.0.0.1:{service.port}/openapi.json", tmp_path)

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_django_api_honours_its_contract_under_fuzzing(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
    tmp_path: Path,
) -> None:
    service = service_for(deployments, start_service, "django", "postgresql", migrated_database)

    result = fuzz(service, str(CONTRACTS / "django-items.openapi.json"), tmp_path)

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_a_page_beyond_the_databases_integers_is_a_json_400(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
    framework: str,
) -> None:
    """The fuzzer found this one: an offset past 64 bits reached the driver as a 500."""
    service = service_for(deployments, start_service, framework, "postgresql", migrated_database)

    for query in ("offset=114301542587690154721280", f"limit=1&offset={2**63}"):
        status, headers, body = send(service, "GET", f"{ITEMS}?{query}")
        # Each framework's own validation error: FastAPI's 422, Django's 400; both name the field.
        assert status == (422 if framework == "fastapi" else 400), (query, status, body)
        assert headers["content-type"].startswith("application/json"), (query, headers)
        assert "offset" in json.dumps(json.loads(body)), (query, body)


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_in_memory_store_is_bounded_and_says_so(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    framework: str,
) -> None:
    service = service_for(
        deployments, start_service, framework, "none", MAX_ITEMS="3", API_DOCS="1"
    )

    created = [send(service, "POST", ITEMS, b'{"name": "n"}')[0] for _ in range(3)]
    status, headers, body = send(service, "POST", ITEMS, b'{"name": "one too many"}')

    assert created == [201, 201, 201]
    assert status == 507, (status, body)
    assert json_error(status, headers, body) == {"detail": "Item store full"}
    assert send(service, "GET", ITEMS)[0] == 200
    if framework == "fastapi":
        document = json.loads(send(service, "GET", "/openapi.json")[2])
    else:
        document = json.loads((CONTRACTS / "django-items.openapi.json").read_text())
    assert "507" in document["paths"][ITEMS]["post"]["responses"]


# --- 19. One method contract for both frameworks ------------------------------------------------


METHOD_CONTRACT = {
    # (method, path): (status, methods the Allow header lists)
    ("OPTIONS", ITEMS): (204, {"GET", "HEAD", "OPTIONS", "POST"}),
    ("DELETE", ITEMS): (405, {"GET", "HEAD", "OPTIONS", "POST"}),
    ("PUT", ITEMS): (405, {"GET", "HEAD", "OPTIONS", "POST"}),
    ("OPTIONS", f"{ITEMS}/1"): (204, {"GET", "HEAD", "OPTIONS"}),
    ("DELETE", f"{ITEMS}/1"): (405, {"GET", "HEAD", "OPTIONS"}),
    ("PUT", f"{ITEMS}/1"): (405, {"GET", "HEAD", "OPTIONS"}),
    ("PATCH", f"{ITEMS}/1"): (405, {"GET", "HEAD", "OPTIONS"}),
    ("POST", f"{ITEMS}/1"): (405, {"GET", "HEAD", "OPTIONS"}),
}


@pytest.mark.parametrize("framework", choice_options()["framework"])
@pytest.mark.parametrize("database", ["postgresql", "none"])
def test_methods_are_answered_alike_on_both_frameworks(
    deployments: Callable[[str, str], Deployed],
    start_service: Callable[..., Service],
    migrated_database: str,
    framework: str,
    database: str,
) -> None:
    service = service_for(deployments, start_service, framework, database, migrated_database)
    assert send(service, "POST", ITEMS, b'{"name": "first"}')[0] == 201

    answers = {}
    for method, path in METHOD_CONTRACT:
        status, headers, body = send(service, method, path, b"{}" if method != "OPTIONS" else None)
        allow = {value.strip() for value in headers.get("allow", "").split(",") if value.strip()}
        answers[method, path] = (status, allow)
        if status == 405:
            assert json_error(status, headers, body) == {"detail": "Method not allowed"}
        else:
            assert body == b"", (method, path, body)

    assert answers == METHOD_CONTRACT
