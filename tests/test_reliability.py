"""The rendered service under shutdown, migration races, database outages, crashes and abuse.

Each test starts the service exactly as its container does (the Dockerfile's CMD with the
project's gunicorn.conf.py) on the host, against the real PostgreSQL.
"""

import concurrent.futures
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.services import (
    Load,
    Service,
    TcpProxy,
    database_url,
    in_venv,
    migrate_command,
    psql,
    raw_http,
    throwaway_database,
)

pytestmark = pytest.mark.reliability

# The manifests' budget: terminationGracePeriodSeconds 30 minus the 5 s preStop sleep.
SHUTDOWN_BUDGET_SECONDS = 25
DRAIN_SECONDS = 3
ITEMS = "/api/v1/items"


@pytest.fixture
def installed(default_project: Path, project_venv: Callable[[Path], Path]) -> tuple[Path, Path]:
    return default_project, project_venv(default_project)


def run_migrations(project: Path, venv: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        in_venv(venv, migrate_command(project)),
        cwd=project,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "DATABASE_URL": url, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def migrated_database(installed: tuple[Path, Path]) -> Iterator[str]:
    project, venv = installed
    with throwaway_database() as name:
        result = run_migrations(project, venv, database_url(name))
        assert result.returncode == 0, result.stdout + result.stderr
        yield name


@pytest.fixture
def service_factory(
    installed: tuple[Path, Path], tmp_path: Path
) -> Iterator[Callable[..., Service]]:
    project, venv = installed
    started: list[Service] = []

    def start(url: str, **env: str) -> Service:
        settings = {"DATABASE_URL": url, "WEB_CONCURRENCY": "2", **env}
        log = tmp_path / f"service-{len(started)}.log"
        service = Service(project=project, venv=venv, env=settings, log_path=log)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


def assert_request_logs_carry_ids(service: Service) -> None:
    requests = [event for event in service.log_events() if event.get("event") == "request"]
    assert requests, "no access events logged"
    assert all(len(event.get("request_id", "")) == 32 for event in requests)


def test_graceful_shutdown_under_load(
    service_factory: Callable[..., Service], migrated_database: str
) -> None:
    service = service_factory(
        database_url(migrated_database), SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS)
    )
    status, _ = service.request(
        "POST", ITEMS, b'{"name": "seed"}', {"Content-Type": "application/json"}
    )
    assert status == 201

    with Load(service.port, [ITEMS, "/health"], clients=50, max_requests=2000) as load:
        time.sleep(1)
        sigterm_at = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        service.wait_until(lambda: service.status("/ready") == 503, 0.5, "/ready to turn 503")
        # The balancer drops the endpoint well within the drain window; until then, traffic flows.
        time.sleep(DRAIN_SECONDS - 1)
        load.stop_sending.set()
    exit_code = service.process.wait(timeout=SHUTDOWN_BUDGET_SECONDS)
    stopped_after = time.monotonic() - sigterm_at

    assert load.result.errors == []
    assert set(load.result.statuses) == {200}
    served_while_draining = [t for t in load.success_times if t > sigterm_at + 0.5]
    assert len(served_while_draining) > 100
    assert exit_code == 0
    assert stopped_after < SHUTDOWN_BUDGET_SECONDS
    open_connections = psql(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{migrated_database}'"  # noqa: S608 - our own name
    )
    assert open_connections == "0"
    assert_request_logs_carry_ids(service)


@pytest.mark.parametrize("replicas", [3, 5])
def test_concurrent_migrations_apply_each_migration_once(
    installed: tuple[Path, Path], replicas: int
) -> None:
    project, venv = installed
    with throwaway_database() as name:
        with concurrent.futures.ThreadPoolExecutor(replicas) as pool:
            results = list(
                pool.map(
                    lambda _: run_migrations(project, venv, database_url(name)), range(replicas)
                )
            )

        assert [result.returncode for result in results] == [0] * replicas, results
        logs = "".join(result.stdout + result.stderr for result in results)
        for line in logs.splitlines():
            json.loads(line)
        versions = sorted(
            (project / "orders_service" / "migrations" / "versions").glob("[0-9]*.py")
        )
        for version in versions:
            revision = version.name.split("_")[0]
            assert logs.count(f"-> {revision},") == 1, logs
        heads = psql("SELECT version_num FROM alembic_version", database=name)
        assert heads == versions[-1].name.split("_")[0]


def test_database_outage_is_fast_503_and_recovers(
    service_factory: Callable[..., Service], migrated_database: str
) -> None:
    proxy = TcpProxy()
    proxy.start()
    try:
        service = service_factory(database_url(migrated_database, port=proxy.port))
        workers = service.worker_pids()
        assert service.status(ITEMS) == 200

        for outage in (proxy.cut, proxy.blackhole):
            outage()
            assert service.status("/health") == 200
            started = time.monotonic()
            assert service.status("/ready") == 503
            assert time.monotonic() - started < 1.0 + 0.5  # READY_TIMEOUT plus scheduling slack
            started = time.monotonic()
            status, body = service.request("GET", ITEMS)
            assert time.monotonic() - started < 3.0 + 1.0  # DATABASE_CONNECT_TIMEOUT plus slack
            assert status == 503, body
            assert json.loads(body) == {"detail": "Database unavailable, try again later"}
            assert b"Traceback" not in body

        proxy.start()
        service.wait_until(lambda: service.status("/ready") == 200, 10, "recovery")
        assert service.status(ITEMS) == 200
        assert service.worker_pids() == workers  # recovered without a restart
        assert_request_logs_carry_ids(service)
    finally:
        proxy.shutdown()


def test_killed_worker_is_replaced_and_others_keep_serving(
    service_factory: Callable[..., Service], migrated_database: str
) -> None:
    service = service_factory(database_url(migrated_database))
    victim, survivor = sorted(service.worker_pids())

    with Load(service.port, [ITEMS, "/health"], clients=10, max_requests=300) as load:
        time.sleep(0.5)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        time.sleep(2)

    # Only connections the killed worker held can fail; every later request succeeds.
    assert len(load.result.errors) <= 10, load.result.errors
    assert any(t > killed_at + 0.5 for t in load.success_times)
    service.wait_until(lambda: len(service.worker_pids()) == 2, 10, "a replacement worker")
    assert survivor in service.worker_pids()
    assert victim not in service.worker_pids()
    assert service.status("/ready") == 200


ABUSE = {
    "oversized body": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000000\r\n\r\n" + b"x" * 65536,
        {413},
    ),
    "oversized chunked body": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"10000\r\n" + b"x" * 65536 + b"\r\n" for _ in range(40))
        + b"0\r\n\r\n",
        {400, 413},
    ),
    "malformed JSON": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Content-Length: 9\r\n\r\n{"name": ',
        {400, 422},
    ),
    "invalid UTF-8 body": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Content-Length: 14\r\n\r\n{"name": "\xff\xfe"}',
        {400, 422},
    ),
    "invalid UTF-8 path": (b"GET /api/v1/items/\xff HTTP/1.1\r\nHost: t\r\n\r\n", {400, 404, 422}),
    "long query string": (
        b"GET /health?q=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        {414, 400},
    ),
    "long header": (
        b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 60000 + b"\r\n\r\n",
        {431, 400},
    ),
    "many headers": (
        b"GET /health HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(3000))
        + b"\r\n",
        {431, 400},
    ),
}


def test_abusive_requests_get_4xx_and_the_service_keeps_serving(
    service_factory: Callable[..., Service], migrated_database: str
) -> None:
    service = service_factory(database_url(migrated_database))

    statuses = {name: raw_http(service.port, payload) for name, (payload, _) in ABUSE.items()}

    assert statuses == {
        name: statuses[name] if statuses[name] in allowed else f"not in {sorted(allowed)}"
        for name, (_, allowed) in ABUSE.items()
    }
    assert service.status("/health") == 200
    assert service.status(ITEMS) == 200
    assert_request_logs_carry_ids(service)
