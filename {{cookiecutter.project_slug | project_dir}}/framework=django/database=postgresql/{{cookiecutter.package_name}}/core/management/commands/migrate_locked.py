"""`migrate`, safe when many pods start at once: the migration initContainer's command.

Every replica's initContainer runs this, so the migration is serialized with a session-level
PostgreSQL advisory lock (a transaction-level lock would end with the first migration's commit).
The first pod migrates; the others wait up to MIGRATION_LOCK_TIMEOUT seconds, then find nothing
left to do. Failure is one log line and exit status 1.
"""

import sys
import time
import zlib
from typing import Any

import structlog
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor

logger = structlog.stdlib.get_logger(__name__)

# Stable per project, so services sharing a database server do not wait on each other.
LOCK_ID = zlib.crc32(__name__.encode())
POLL_INTERVAL = 0.5


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


def pending_migrations(connection: BaseDatabaseWrapper) -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


class Command(BaseCommand):
    help = "Apply migrations under a PostgreSQL advisory lock, so concurrent pods migrate once."

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            with connection.cursor() as cursor:
                # Migrations may run longer than the statement timeout meant for requests.
                cursor.execute("SET statement_timeout = 0")
            waited = acquire_lock(connection, settings.MIGRATION_LOCK_TIMEOUT)
            logger.info("migration lock acquired", lock_id=LOCK_ID, waited_s=round(waited, 3))
            try:
                applied = pending_migrations(connection)
                call_command("migrate", interactive=False, verbosity=0)
            finally:
                release_lock(connection)
        except Exception as exc:  # noqa: BLE001 - one clear line for the pod's log, then exit 1
            logger.error("migration failed", reason=f"{type(exc).__name__}: {exc}")
            sys.exit(1)
        logger.info("migrations applied", applied=applied)
