"""The rendered service under shutdown, migration races, database outages, crashes and abuse.

Each test starts the service exactly as its container does (the Dockerfile's CMD with the
project's gunicorn.conf.py) on the host, against the real PostgreSQL, for every framework.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from testkit import deployment
from testkit.deployment import Deployed, run_command, run_migrations
from testkit.services import (
    Load,
    Service,
    TcpProxy,
    database_url,
    migrate_command,
    psql,
    raw_http,
    throwaway_database,
)

pytestmark = pytest.mark.reliability
deployed_projects = deployment.deployed_projects
deployed = deployment.deployed
migrated_database = deployment.migrated_database
service_factory = deployment.service_factory

# The manifests' budget: terminationGracePeriodSeconds 30 minus the 5 s preStop sleep.
SHUTDOWN_BUDGET_SECONDS = 25
DRAIN_SECONDS = 3
ITEMS = "/api/v1/items"
OUTAGE_SECONDS = 40
# The event each framework's access logging writes once per request.
ACCESS_EVENTS = {"fastapi": "request", "django": "request_finished"}


def assert_request_logs_carry_ids(service: Service, framework: str) -> None:
    """Every line is one JSON object; every access event names its request by a UUID."""
    events = service.log_events()
    requests = [event for event in events if event.get("event") == ACCESS_EVENTS[framework]]
    assert requests, "no access events logged"
    for event in requests:
        uuid.UUID(event.get("request_id", "missing"))


def test_graceful_shutdown_under_load(
    deployed: Deployed, service_factory: Callable[..., Service], migrated_database: str
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
        status, headers, body = service.get("/ready")
        assert (status, json.loads(body)) == (
            503,
            {"status": "unavailable", "checks": {"shutdown": "draining"}},
        )
        # Clients reconnect, and the next connection finds a pod that is not going away.
        assert headers["Connection"] == "close"
        assert service.get(ITEMS)[1]["Connection"] == "close"
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
    assert DRAIN_SECONDS <= stopped_after < SHUTDOWN_BUDGET_SECONDS
    open_connections = psql(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{migrated_database}'"  # noqa: S608 - our own name
    )
    assert open_connections == "0"
    assert_request_logs_carry_ids(service, deployed.framework)


def assert_each_migration_applied_once(deployed: Deployed, logs: str, database: str) -> None:
    if deployed.framework == "django":
        events = [json.loads(line) for line in logs.splitlines()]
        applied = [
            migration
            for event in events
            if event["event"] == "migrations applied"
            for migration in event["applied"]
        ]
        recorded = psql(
            "SELECT app || '.' || name FROM django_migrations", database=database
        ).splitlines()
        # Each migration ran once, in one replica, and is recorded once.
        assert len(set(applied)) == len(applied), applied
        assert sorted(applied) == sorted(recorded)
        project_migrations = {
            f"{path.parent.parent.name}.{path.stem}"
            for path in deployed.package.glob("*/migrations/[0-9]*.py")
        }
        assert project_migrations <= set(recorded)
        at_head = run_command(
            deployed, ["python", "manage.py", "migrate", "--check"], database_url(database)
        )
        assert at_head.returncode == 0, at_head.stdout + at_head.stderr
    else:
        for line in logs.splitlines():
            json.loads(line)
        versions = sorted((deployed.package / "migrations" / "versions").glob("[0-9]*.py"))
        for version in versions:
            revision = version.name.split("_")[0]
            assert logs.count(f"-> {revision},") == 1, logs
        heads = psql("SELECT version_num FROM alembic_version", database=database)
        assert heads == versions[-1].name.split("_")[0]


@pytest.mark.parametrize("replicas", [3, 5])
def test_concurrent_migrations_apply_each_migration_once(deployed: Deployed, replicas: int) -> None:
    with throwaway_database() as name:
        with concurrent.futures.ThreadPoolExecutor(replicas) as pool:
            results = list(
                pool.map(lambda _: run_migrations(deployed, database_url(name)), range(replicas))
            )

        assert [result.returncode for result in results] == [0] * replicas, results
        logs = "".join(result.stdout + result.stderr for result in results)
        assert_each_migration_applied_once(deployed, logs, name)


def test_database_outage_is_fast_503_and_recovers(
    deployed: Deployed, service_factory: Callable[..., Service], migrated_database: str
) -> None:
    proxy = TcpProxy()
    proxy.start()
    try:
        service = service_factory(database_url(migrated_database, port=proxy.port))
        workers = service.worker_pids()
        assert service.status(ITEMS) == 200

        outage_started = time.monotonic()
        for outage in (proxy.blackhole, proxy.cut):
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

        # A long outage that ends refusing connections: a pool that backs off retrying would
        # still be asleep when the database returns.
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        proxy.start()
        recovered = time.monotonic()
        service.wait_until(lambda: service.status("/ready") == 200, 10, "readiness")
        # Each worker (requests spread over both) serves from the database again promptly.
        service.wait_until(
            lambda: all(service.status(ITEMS) == 200 for _ in range(8)), 20, "items again"
        )
        # A retry gap within a 5 s reconnect window, plus slack; with psycopg_pool's 5 minute
        # default, Django slept past 10 s here.
        assert time.monotonic() - recovered < 8.0
        assert service.worker_pids() == workers  # recovered without a restart
        assert_request_logs_carry_ids(service, deployed.framework)
    finally:
        proxy.shutdown()


def test_killed_worker_is_replaced_and_others_keep_serving(
    deployed: Deployed, service_factory: Callable[..., Service], migrated_database: str
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
    assert set(load.result.statuses) == {200}
    assert any(t > killed_at + 0.5 for t in load.success_times)
    service.wait_until(lambda: len(service.worker_pids()) == 2, 10, "a replacement worker")
    assert survivor in service.worker_pids()
    assert victim not in service.worker_pids()
    assert service.status("/ready") == 200
    assert_request_logs_carry_ids(service, deployed.framework)


ABUSE = {
    "oversized body": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000000\r\n\r\n" + b"x" * 65536,
        {413},
    ),
    # No Content-Length: refused (413, or 400) before the body is read in full.
    "oversized chunked body": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"10000\r\n" + b"x" * 65536 + b"\r\n" for _ in range(40))
        + b"0\r\n\r\n",
        {400, 413},
    ),
    # FastAPI reports invalid input as 422, Django's views as 400.
    "malformed JSON": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b'Content-Length: 9\r\n\r\n{"name": ',
        {400, 422},
    ),
    "invalid UTF-8 body": (
        b"POST /api/v1/items HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b'Content-Length: 14\r\n\r\n{"name": "\xff\xfe"}',
        {400, 422},
    ),
    "invalid UTF-8 path": (
        b"GET /api/v1/items/\xff HTTP/1.1\r\nHost: localhost\r\n\r\n",
        {400, 404, 422},
    ),
    "long query string": (
        b"GET /health?q=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        {414},
    ),
    "long header": (
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 60000 + b"\r\n\r\n",
        {431},
    ),
    "many headers": (
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
        + b"".join(b"X-H%d: v\r\n" % n for n in range(3000))
        + b"\r\n",
        {431},
    ),
}


def test_abusive_requests_get_4xx_and_the_service_keeps_serving(
    deployed: Deployed, service_factory: Callable[..., Service], migrated_database: str
) -> None:
    service = service_factory(database_url(migrated_database))

    statuses = {name: raw_http(service.port, payload) for name, (payload, _) in ABUSE.items()}

    assert statuses == {
        name: statuses[name] if statuses[name] in allowed else f"not in {sorted(allowed)}"
        for name, (_, allowed) in ABUSE.items()
    }
    assert service.status("/health") == 200
    assert service.status(ITEMS) == 200
    assert_request_logs_carry_ids(service, deployed.framework)


# The table each framework's example model lives in, and a migration that adds a column to it.
ITEMS_TABLE = {"fastapi": "items", "django": "items_item"}


def add_column_migration(deployed: Deployed, project: Path) -> None:
    """A new migration in `project` that adds a column to the items table: ACCESS EXCLUSIVE."""
    package = project / deployed.package.name
    if deployed.framework == "django":
        migrations = package / "items" / "migrations"
        latest = sorted(path.stem for path in migrations.glob("[0-9]*.py"))[-1]
        (migrations / "9999_item_lock_probe.py").write_text(
            "from django.db import migrations, models\n\n\n"
            "class Migration(migrations.Migration):\n"
            f"    dependencies = [('items', '{latest}')]\n"
            "    operations = [\n"
            "        migrations.AddField('item', 'lock_probe', models.IntegerField(null=True)),\n"
            "    ]\n"
        )
        return
    versions = package / "migrations" / "versions"
    texts = [path.read_text() for path in versions.glob("*.py")]
    revisions = {re.search(r'^revision: str = "(\w+)"', text, re.M).group(1) for text in texts}
    parents = {match.group(1) for text in texts for match in DOWN_REVISION.finditer(text)}
    (head,) = revisions - parents
    (versions / "9999_lock_probe.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "lock_probe"\ndown_revision = "{head}"\n\n\n'
        "def upgrade() -> None:\n"
        '    op.add_column("items", sa.Column("lock_probe", sa.Integer(), nullable=True))\n'
    )


DOWN_REVISION = re.compile(r'^down_revision: str \| None = "(\w+)"', re.M)


class TableReader:
    """A reader in an open transaction that keeps a table share-locked: a slow report."""

    def __init__(self, database: str, table: str) -> None:
        self.database = database
        self.process = subprocess.Popen(
            ["psql", database_url(database), "-XAtq"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.send(f"BEGIN; SELECT count(*) FROM {table};")  # noqa: S608 - our own name
        self.wait_for(f"SELECT count(*) FROM {table}")  # noqa: S608 - our own name

    def send(self, sql: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(sql + "\n")
        self.process.stdin.flush()

    def wait_for(self, query: str, timeout: float = 30) -> None:
        """Until some session of the database has run `query` (its start is enough)."""
        deadline = time.monotonic() + timeout
        sql = (
            "SELECT count(*) FROM pg_stat_activity "  # noqa: S608 - our own names
            f"WHERE datname = '{self.database}' AND query LIKE '{query}%'"
        )
        while psql(sql) == "0":
            assert time.monotonic() < deadline, f"no session ran {query!r}"
            time.sleep(0.05)

    def finish(self) -> int:
        self.send("COMMIT;")
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=30)


def logged_seconds(result: subprocess.CompletedProcess[str], first: str, last: str) -> float:
    """Seconds between two events of a command's JSON log."""
    events = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()]
    times = {
        event["event"]: datetime.fromisoformat(event["timestamp"])
        for event in events
        if event["event"] in (first, last)
    }
    return (times[last] - times[first]).total_seconds()


def latencies_while(service: Service, running: Callable[[], bool]) -> list[tuple[int, float]]:
    """(status, seconds) of back-to-back item listings while `running()` holds."""
    results = []
    while running():
        started = time.monotonic()
        status, _ = service.request("GET", ITEMS)
        results.append((status, time.monotonic() - started))
    return results


def test_waiting_schema_change_never_freezes_live_traffic(
    deployed: Deployed,
    service_factory: Callable[..., Service],
    migrated_database: str,
    tmp_path: Path,
) -> None:
    # The image as it would be built with one more migration: a column added to the items table.
    project = tmp_path / deployed.project.name
    shutil.copytree(deployed.project, project)
    add_column_migration(deployed, project)
    changed = Deployed(deployed.framework, project, deployed.venv, deployed.env)
    url = database_url(migrated_database)
    service = service_factory(url)
    assert service.status(ITEMS) == 200
    table = ITEMS_TABLE[deployed.framework]
    column_exists = (
        f"SELECT count(*) FROM information_schema.columns "  # noqa: S608 - our own names
        f"WHERE table_name = '{table}' AND column_name = 'lock_probe'"
    )

    reader = TableReader(migrated_database, table)
    try:
        # A budget shorter than the reader's transaction: the migration gives up, in time.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            attempt = pool.submit(
                run_command,
                changed,
                migrate_command(project),
                url,
                timeout=30,
                MIGRATION_LOCK_TIMEOUT="3",
            )
            during_attempt = latencies_while(service, lambda: not attempt.done())
            try:
                gave_up = attempt.result()
            except subprocess.TimeoutExpired:
                gave_up = None
        # The real budget: the migration retries while the reader goes on, then applies.
        slowest = max(seconds for _, seconds in during_attempt)
        assert gave_up is not None, (
            f"a 3 s budget, still waiting after 30 s; meanwhile a request waited {slowest:.1f}s"
        )
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            applying = pool.submit(run_command, changed, migrate_command(project), url)
            retries = pool.submit(latencies_while, service, lambda: not applying.done())
            reader.wait_for("ALTER TABLE", timeout=60)
            time.sleep(3)  # a few attempts, each giving up after its lock_timeout
            reader_exit = reader.finish()
            applied = applying.result()
            during_retries = retries.result()
    finally:
        reader.process.kill()
        reader.process.wait()

    served = during_attempt + during_retries
    slowest = max(seconds for _, seconds in served)
    # Each attempt holds the queue up for at most its 1 s lock_timeout.
    assert slowest < 2.0, f"a request waited {slowest:.1f}s behind the queued schema change"
    assert {status for status, _ in served} == {200}
    assert len(served) > 20
    assert gave_up.returncode == 1, gave_up.stdout + gave_up.stderr
    # Within the budget, from the migration's own log: at most one lock_timeout over it.
    gave_up_after = logged_seconds(gave_up, "migration lock acquired", "migration failed")
    assert gave_up_after < 3 + 1.5, f"gave up {gave_up_after:.1f}s after taking the lock"
    assert "locked" in gave_up.stdout + gave_up.stderr
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "table lock busy, retrying" in applied.stdout + applied.stderr
    assert reader_exit == 0
    assert psql(column_exists, database=migrated_database) == "1"
