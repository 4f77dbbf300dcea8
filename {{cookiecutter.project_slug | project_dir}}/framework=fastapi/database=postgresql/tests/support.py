"""Helpers shared by the tests: throw-away databases, the migrate command, an in-process client."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.main import create_app

SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MIGRATE_COMMAND = [sys.executable, "-m", "{{ cookiecutter.package_name }}.migrate"]
# Port 1 on loopback refuses connections: a database that is down.
UNREACHABLE_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/none"


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    try:
        conn = await asyncpg.connect(asyncpg_dsn(SERVER_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at TEST_DATABASE_URL={SERVER_URL!r}: {exc}", pytrace=False
        )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_database() -> str:
    """Create an empty database and return its SQLAlchemy URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = make_url(SERVER_URL).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate_env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "LOG_FORMAT": "json"}


def run_migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the migration command exactly as the deployment does."""
    return subprocess.run(  # noqa: S603 - fixed command line
        MIGRATE_COMMAND,
        env=migrate_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@asynccontextmanager
async def serve(
    settings: Settings, tracer_provider: TracerProvider | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client that talks to it in-process."""
    app = create_app(settings, tracer_provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
