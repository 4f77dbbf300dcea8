"""Apply database migrations safely when many pods start at once.

The Kubernetes initContainer runs this module in every replica, so the upgrade is serialized
with a session-level PostgreSQL advisory lock held on a dedicated connection (a transaction-level
lock would be released by the migration's own commits). The first pod migrates; the others wait,
then find nothing left to do.

Each statement waits at most LOCK_TIMEOUT for its table locks. A schema change that waits for a
lock (behind a long transaction) makes every later query on that table queue behind it, so live
traffic would freeze for as long as the wait lasts; instead the migration gives up, lets the
traffic through, and tries again until MIGRATION_LOCK_TIMEOUT has passed.

`--create-database` first creates the database DATABASE_URL names when it is missing, for local
development (`make migrate`); deployments get a database that exists.
"""

import argparse
import asyncio
import sys
import time
import zlib

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, make_url, pool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from {{ cookiecutter.package_name }}.core.logging_config import configure_logging
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings

logger = structlog.get_logger(__name__)

# Stable per project, so services sharing a database server do not wait on each other.
LOCK_ID = zlib.crc32(__name__.encode())
POLL_INTERVAL = 0.5
# The longest a migration statement waits for a table lock, and so the longest it can hold up the
# queries queued behind it; between attempts the queue drains for RETRY_PAUSE seconds.
LOCK_TIMEOUT = "1s"
RETRY_PAUSE = 1.0
LOCK_NOT_AVAILABLE = "55P03"


class LockTimeoutError(Exception):
    pass


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "{{ cookiecutter.package_name }}:migrations")
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def acquire_lock(conn: AsyncConnection, max_wait: float) -> float:
    """Poll for the lock so the wait is bounded; return how long it took."""
    started = time.monotonic()
    while not await conn.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": LOCK_ID}):
        await conn.commit()
        waited = time.monotonic() - started
        if waited >= max_wait:
            raise LockTimeoutError(f"migration lock {LOCK_ID} not acquired within {max_wait:g}s")
        await asyncio.sleep(POLL_INTERVAL)
    await conn.commit()
    return time.monotonic() - started


def lock_not_available(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


async def upgrade_with_retries(conn: AsyncConnection, deadline: float) -> None:
    """Upgrade, retrying while the budget lasts when a statement timed out waiting for a lock."""
    await conn.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
    await conn.commit()
    attempt = 1
    while True:
        try:
            await conn.run_sync(upgrade_to_head)
            await conn.commit()
            return
        except DBAPIError as exc:
            await conn.rollback()
            if not lock_not_available(exc):
                raise
            if time.monotonic() + RETRY_PAUSE >= deadline:
                raise LockTimeoutError(
                    f"tables stayed locked by other transactions; gave up after {attempt} attempts"
                ) from exc
            logger.warning("table lock busy, retrying", attempt=attempt, lock_timeout=LOCK_TIMEOUT)
        attempt += 1
        await asyncio.sleep(RETRY_PAUSE)


async def create_database_if_missing(settings: Settings) -> None:
    url = make_url(settings.database_url)
    if not url.database:
        return
    engine = create_async_engine(
        url.set(database="postgres"),
        poolclass=pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": settings.database_connect_timeout},
    )
    try:
        async with engine.connect() as conn:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            if not await conn.scalar(query, {"name": url.database}):
                quoted = conn.dialect.identifier_preparer.quote(url.database)
                await conn.execute(text(f"CREATE DATABASE {quoted}"))
                logger.info("database created", database=url.database)
    finally:
        await engine.dispose()


async def migrate(settings: Settings) -> None:
    deadline = time.monotonic() + settings.migration_lock_timeout
    engine = create_async_engine(
        settings.database_url,
        poolclass=pool.NullPool,
        connect_args={"timeout": settings.database_connect_timeout},
    )
    try:
        async with engine.connect() as conn:
            waited = await acquire_lock(conn, settings.migration_lock_timeout)
            logger.info("migration lock acquired", lock_id=LOCK_ID, waited_s=round(waited, 3))
            try:
                await upgrade_with_retries(conn, deadline)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
                await conn.commit()
    finally:
        await engine.dispose()
    logger.info("migrations at head")


async def run(settings: Settings, create_database: bool) -> None:
    if create_database:
        await create_database_if_missing(settings)
    await migrate(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply the migrations to DATABASE_URL.")
    parser.add_argument(
        "--create-database", action="store_true", help="create the database first if missing"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        asyncio.run(run(settings, args.create_database))
    except LockTimeoutError as exc:
        logger.error("migration failed", reason=str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - one clear line for the pod's log, then a non-zero exit
        logger.error("migration failed", reason=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
