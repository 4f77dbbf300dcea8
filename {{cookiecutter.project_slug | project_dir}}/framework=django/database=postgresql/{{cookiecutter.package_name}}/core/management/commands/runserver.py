"""`make run`: Django's development server, after checking that the database answers.

Without the check a database that is down shows up as a traceback from the server's thread,
and the server then waits for code changes instead of exiting.
"""

from typing import Any, cast

from django.contrib.staticfiles.management.commands import runserver
from django.core.handlers.wsgi import WSGIHandler
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.backends.postgresql.base import DatabaseWrapper


class Command(runserver.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            connection.ensure_connection()
        except OperationalError as exc:
            server = connection.settings_dict
            where = f"{server['HOST'] or 'localhost'}:{server['PORT'] or 5432}"
            raise CommandError(
                f"The database at {where} (DATABASE_URL) is unreachable: start it with"
                " `docker compose up -d db`, or point DATABASE_URL at a running server."
            ) from exc
        finally:
            connection.close()
        super().handle(*args, **options)

    def get_handler(self, *args: Any, **options: Any) -> WSGIHandler:
        handler = super().get_handler(*args, **options)
        # The checks before it opened the pool, ahead of the app (wsgi.py): with tracing on, its
        # connections would not be traced. The requests get a new one.
        connection = cast(DatabaseWrapper, connections[DEFAULT_DB_ALIAS])
        connection.close()
        connection.close_pool()
        return handler
