"""Probes, and the JSON error pages the URLconf names.

gunicorn's server layer (core/serving.py) answers the probes itself, without a request thread;
the views here answer them in the development server and the test client.
"""

{% if cookiecutter.database == "postgresql" -%}
import asyncio
from concurrent.futures import ThreadPoolExecutor

{% endif -%}
{% if cookiecutter.database == "postgresql" -%}
import psycopg
{% endif -%}
import structlog
{%- if cookiecutter.database == "postgresql" %}
from django.conf import settings
{%- endif %}
from django.core.exceptions import RequestDataTooBig
{%- if cookiecutter.database == "postgresql" %}
from django.db import DEFAULT_DB_ALIAS, connections
{%- endif %}
from django.http import HttpRequest, JsonResponse
{%- if cookiecutter.database == "postgresql" %}
from opentelemetry.instrumentation.utils import suppress_instrumentation
{%- endif %}

from {{ cookiecutter.package_name }}.core.shutdown import is_draining

logger = structlog.stdlib.get_logger(__name__)
{%- if cookiecutter.database == "postgresql" %}

# The check runs on its own thread so /ready answers within READY_TIMEOUT even when connecting
# hangs (libpq's connect_timeout counts whole seconds, at least two); one thread per process
# bounds what a hung database can hold.
database_checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ready-check")
{%- endif %}

HEALTHY = {"status": "ok"}


def health(request: HttpRequest) -> JsonResponse:
{%- if cookiecutter.database == "postgresql" %}
    """Liveness: touches no dependency, so a database outage never restarts pods."""
{%- else %}
    """Liveness: answers as long as the process serves requests."""
{%- endif %}
    return JsonResponse(HEALTHY)
{%- if cookiecutter.database == "postgresql" %}


def check_database() -> None:
    """Connect and run a query, outside the request pool: can this pod reach the database now?"""
    connection = connections[DEFAULT_DB_ALIAS]
    # No spans for the check, as for the probe itself (core/tracing.py).
    with suppress_instrumentation(), psycopg.connect(**connection.get_connection_params()) as conn:
        conn.execute("SELECT 1")


def database_not_ready(exc: BaseException) -> JsonResponse:
    if isinstance(exc, TimeoutError):
        return not_ready("database", f"no answer within {settings.READY_TIMEOUT}s")
    return not_ready("database", type(exc).__name__)


READY = {"status": "ready", "checks": {"database": "ok"}}
{%- endif %}


def ready(request: HttpRequest) -> JsonResponse:
    if is_draining():
        return not_ready("shutdown", "draining")
{%- if cookiecutter.database == "postgresql" %}
    try:
        database_checker.submit(check_database).result(timeout=settings.READY_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is reported as such
        return database_not_ready(exc)
    return JsonResponse(READY)
{%- else %}
    # Add a check here for each service the app comes to depend on, each under a time limit.
    return JsonResponse({"status": "ready", "checks": {}})
{%- endif %}


async def ready_async() -> JsonResponse:
    """/ready on the event loop: waits for the check's thread without holding one of its own."""
    if is_draining():
        return not_ready("shutdown", "draining")
{%- if cookiecutter.database == "postgresql" %}
    try:
        async with asyncio.timeout(settings.READY_TIMEOUT):
            await asyncio.wrap_future(database_checker.submit(check_database))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is reported as such
        return database_not_ready(exc)
    return JsonResponse(READY)
{%- else %}
    return JsonResponse({"status": "ready", "checks": {}})
{%- endif %}


def not_ready(check: str, reason: str) -> JsonResponse:
    logger.warning("readiness check failed", check=check, reason=reason)
    return JsonResponse({"status": "unavailable", "checks": {check: reason}}, status=503)


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    # Django reports a body over DATA_UPLOAD_MAX_MEMORY_SIZE as a 400; 413 tells the client why.
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse({"detail": "Request body too large"}, status=413)
    return JsonResponse({"detail": "Bad request"}, status=400)


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return JsonResponse({"detail": "Not found"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error"}, status=500)
