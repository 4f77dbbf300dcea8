"""Tests run against a real PostgreSQL server (TEST_DATABASE_URL, see tests/settings.py).

pytest-django creates the test database for in-process tests; tests that run manage.py or
gunicorn in a subprocess get a throw-away database of their own, dropped afterwards.
"""

from collections.abc import Iterator

import pytest
from django.db import connections

from tests.support import create_database, database_url, drop_database


@pytest.fixture
def empty_database() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def migrated_database(django_db_setup: None) -> str:
    """pytest-django's test database (migrated, no rows), as a URL for other processes."""
    return database_url(connections["default"].settings_dict["NAME"])
