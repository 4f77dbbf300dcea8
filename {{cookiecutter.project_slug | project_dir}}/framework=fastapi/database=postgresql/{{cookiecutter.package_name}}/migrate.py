"""Apply database migrations safely when many pods start at once.

The Kubernetes initContainer runs this module in every replica, so the upgrade is serialized
with a session-level PostgreSQL advisory lock held on a dedicated connection (a transaction-level
lock would be released by the migration's own commits). The first pod migrates; the others wait,
then find nothing left to do.
"""

import asyncio
import sys
import time
import zlib

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from {{ cookiecutter.package_name }}.core.logging_config import configure_logging
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings

logger = structlog.get_logger(__name__)

# Stable per project, so services sharing a database server do not wait on each other.
LOCK_ID = zlib.crc32(__name__.encode())
POLL_INTERVAL = 0.5


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


async def migrate(settings: Settings) -> None:
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
                await conn.run_sync(upgrade_to_head)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
                await conn.commit()
    finally:
        await engine.dispose()
    logger.info("migrations at head")


def main() -> int:
    settings = get_settings()
    configure_logging(settings)
    try:
        asyncio.run(migrate(settings))
    except LockTimeoutError as exc:
        logger.error("migration failed", reason=str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - one clear line for the pod's log, then a non-zero exit
        logger.error("migration failed", reason=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
