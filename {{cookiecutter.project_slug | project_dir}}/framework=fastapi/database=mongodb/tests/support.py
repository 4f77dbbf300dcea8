"""Helpers shared by the tests: throw-away databases, the migrate command, an in-process client.

Tests that need a MongoDB server use the one MONGODB_URL names, in databases of their own that
they drop afterwards; without MONGODB_URL they are skipped, and say so. The rest run against a
server that is not there.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from opentelemetry.sdk.trace import TracerProvider
from pymongo import MongoClient

from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.main import create_app

SERVER_URL = os.environ.get("MONGODB_URL")
NO_SERVER = "needs a MongoDB server: set MONGODB_URL, e.g. mongodb://127.0.0.1:27017"
MIGRATE_COMMAND = [sys.executable, "-m", "{{ cookiecutter.package_name }}.migrate"]
# Port 1 on loopback refuses connections: a database that is down.
UNREACHABLE_MONGODB_URL = "mongodb://127.0.0.1:1/?directConnection=true"


def new_database_name() -> str:
    # MongoDB creates a database on its first write.
    return f"test_{uuid.uuid4().hex[:12]}"


def drop_database(server_url: str, name: str) -> None:
    with MongoClient(server_url, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(name)


def migrate_env(server_url: str, database: str, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "MONGODB_URL": server_url,
        "MONGODB_DATABASE": database,
        "LOG_FORMAT": "json",
        **overrides,
    }


def run_migrate(
    server_url: str, database: str, **overrides: str
) -> subprocess.CompletedProcess[str]:
    """Run the migration command exactly as the deployment does."""
    return subprocess.run(  # noqa: S603 - fixed command line
        MIGRATE_COMMAND,
        env=migrate_env(server_url, database, **overrides),
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
