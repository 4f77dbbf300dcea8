"""Tests run against a real PostgreSQL server (TEST_DATABASE_URL, see tests/settings.py).

pytest-django creates the test database for in-process tests; tests that run manage.py or
gunicorn in a subprocess get a throw-away database of their own, dropped afterwards.
"""

from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from django.db import connections

from tests.support import SERVER_URL, create_database, database_url, drop_database


def pytest_sessionstart(session: pytest.Session) -> None:
    """One line, not an error per test, when the test server is down."""
    try:
        psycopg.connect(SERVER_URL, connect_timeout=3).close()
    except psycopg.OperationalError:
        server = urlsplit(SERVER_URL)
        # A usage error: pytest prints it as one line and runs nothing.
        raise pytest.UsageError(
            f"PostgreSQL at {server.hostname}:{server.port or 5432} (TEST_DATABASE_URL) is"
            " unreachable: start it with `docker compose up -d db`, or point TEST_DATABASE_URL"
            " at a running server."
        ) from None


@pytest.fixture
def empty_database() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def migrated_database(django_db_setup: None) -> str:
    """pytest-django's test database (migrated, no rows), as a URL for other processes."""
    return database_url(connections["default"].settings_dict["NAME"])
