"""`migrate`, safe when many pods start at once: the migration initContainer's command.

Every replica's initContainer runs this, so the migration is serialized with a session-level
PostgreSQL advisory lock (a transaction-level lock would end with the first migration's commit).
The first pod migrates; the others wait up to MIGRATION_LOCK_TIMEOUT seconds, then find nothing
left to do. Failure is one log line and exit status 1.

Each statement waits at most LOCK_TIMEOUT for its table locks. A schema change that waits for a
lock (behind a long transaction) makes every later query on that table queue behind it, so live
traffic would freeze for as long as the wait lasts; instead the migration gives up, lets the
traffic through, and tries again until MIGRATION_LOCK_TIMEOUT has passed.

`--create-database` first creates the database DATABASE_URL names when it is missing, for local
development (`make migrate`); deployments get a database that exists.
"""

import sys
import time
import zlib
from typing import Any

import psycopg
import structlog
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from psycopg import errors, sql

logger = structlog.stdlib.get_logger(__name__)

# Stable per project, so services sharing a database server do not wait on each other.
LOCK_ID = zlib.crc32(__name__.encode())
POLL_INTERVAL = 0.5
# The longest a migration statement waits for a table lock, and so the longest it can hold up the
# queries queued behind it; between attempts the queue drains for RETRY_PAUSE seconds.
LOCK_TIMEOUT = "1s"
RETRY_PAUSE = 1.0


class LockTimeoutError(Exception):
    pass


def acquire_lock(connection: BaseDatabaseWrapper, max_wait: float) -> float:
    """Poll for the lock so the wait is bounded; return how long it took."""
    started = time.monotonic()
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_ID])
            if cursor.fetchone()[0]:
                return time.monotonic() - started
            if time.monotonic() - started >= max_wait:
                raise LockTimeoutError(
                    f"migration lock {LOCK_ID} not acquired within {max_wait:g}s"
                )
            time.sleep(POLL_INTERVAL)


def release_lock(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_ID])


def migrate_with_retries(deadline: float) -> None:
    """`migrate`, retried while the budget lasts when a statement timed out waiting for a lock.

    Each migration is its own transaction: an attempt that gives up rolls back only the one it
    was applying, and the next attempt goes on from there.
    """
    attempt = 1
    while True:
        try:
            call_command("migrate", interactive=False, verbosity=0)
            return
        except OperationalError as exc:
            if not isinstance(exc.__cause__, errors.LockNotAvailable):
                raise
            if time.monotonic() + RETRY_PAUSE >= deadline:
                raise LockTimeoutError(
                    f"tables stayed locked by other transactions; gave up after {attempt} attempts"
                ) from exc
            logger.warning("table lock busy, retrying", attempt=attempt, lock_timeout=LOCK_TIMEOUT)
        attempt += 1
        time.sleep(RETRY_PAUSE)


def create_database_if_missing(database: dict[str, Any]) -> None:
    """Create the configured database, connected to the server's `postgres` database."""
    server = {
        "dbname": "postgres",
        "user": database["USER"] or None,
        "password": database["PASSWORD"] or None,
        "host": database["HOST"] or None,
        "port": database["PORT"] or None,
        "connect_timeout": database["OPTIONS"].get("connect_timeout"),
    }
    with psycopg.connect(autocommit=True, **server) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database["NAME"]]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database["NAME"])))
            logger.info("database created", database=database["NAME"])


def pending_migrations(connection: BaseDatabaseWrapper) -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


class Command(BaseCommand):
    help = "Apply migrations under a PostgreSQL advisory lock, so concurrent pods migrate once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--create-database", action="store_true", help="create the database first if missing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + settings.MIGRATION_LOCK_TIMEOUT
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            if options["create_database"]:
                create_database_if_missing(connection.settings_dict)
            with connection.cursor() as cursor:
                # Migrations may run longer than the statement timeout meant for requests.
                cursor.execute("SET statement_timeout = 0")
                cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            waited = acquire_lock(connection, settings.MIGRATION_LOCK_TIMEOUT)
            logger.info("migration lock acquired", lock_id=LOCK_ID, waited_s=round(waited, 3))
            try:
                applied = pending_migrations(connection)
                migrate_with_retries(deadline)
            finally:
                release_lock(connection)
        except Exception as exc:  # noqa: BLE001 - one clear line for the pod's log, then exit 1
            logger.error("migration failed", reason=f"{type(exc).__name__}: {exc}")
            sys.exit(1)
        logger.info("migrations applied", applied=applied)
