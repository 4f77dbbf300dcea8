"""`make run`: Django's development server, after checking that the database answers.

Without the check a database that is down shows up as a traceback from the server's thread,
and the server then waits for code changes instead of exiting.
"""

from typing import Any

from django.contrib.staticfiles.management.commands import runserver
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections


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
