"""Alembic environment: async engine from settings, or a connection handed over by `migrate`."""

import asyncio

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from {{ cookiecutter.package_name }} import models  # noqa: F401 - registers the tables on Base.metadata
from {{ cookiecutter.package_name }}.core.db import Base
from {{ cookiecutter.package_name }}.core.logging_config import configure_logging
from {{ cookiecutter.package_name }}.core.settings import Settings

target_metadata = Base.metadata
# Read the environment afresh: the alembic CLI may run in a process that already cached settings.
settings = Settings()


def run_on_connection(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine() -> None:
    engine = create_async_engine(settings.database_url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_on_connection)
    await engine.dispose()


def run_offline() -> None:
    context.configure(
        url=settings.database_url, target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif (connection := context.config.attributes.get("connection")) is not None:
    run_on_connection(connection)
else:
    configure_logging(settings)
    asyncio.run(run_with_own_engine())
