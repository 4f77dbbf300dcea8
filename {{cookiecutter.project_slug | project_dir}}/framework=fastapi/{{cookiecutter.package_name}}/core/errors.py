"""Every error a client can meet is JSON, `{"detail": "..."}`, like the API's own answers.

{% if cookiecutter.database == "postgresql" -%}
The database being unavailable (down, refusing this service's credentials, out of time for a
statement, not migrated yet) is a 503 with Retry-After: nothing the client did, and a retry may
succeed. Any other error is a 500 whose traceback goes to the log, not to the client.
{% elif cookiecutter.database == "mongodb" -%}
A database that cannot be reached is a 503 with Retry-After: nothing the client did, and a retry
may succeed. Any other error is a 500 whose traceback goes to the log, not to the client.
{% else -%}
An unexpected error is a 500 whose traceback goes to the log, not to the client.
{% endif -%}
The last-resort 500, for an exception no handler here takes, is EdgeMiddleware's
(core/middleware.py), so that it carries the request's id.
"""

import math

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
{%- if cookiecutter.database == "mongodb" %}
from pymongo.errors import ConnectionFailure
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
{%- endif %}
from starlette.exceptions import HTTPException
from starlette.routing import Match

logger = structlog.get_logger(__name__)
{%- if cookiecutter.database != "none" %}

UNAVAILABLE = {"detail": "Database unavailable, try again later"}
{%- if cookiecutter.database == "postgresql" %}

# SQLSTATE classes and codes that say "the database cannot serve now", not "this request is wrong".
UNAVAILABLE_SQLSTATE_CLASSES = {
    "08": "connection failed",
    "28": "credentials rejected",
    "53": "out of resources",
    "57": "server shutting down",
}
UNAVAILABLE_SQLSTATES = {
    "3D000": "database does not exist",
    "40001": "serialization failure",
    "40P01": "deadlock",
    "55P03": "lock not available",
    "57014": "statement timed out",
    # A table or column the code expects is missing: the migrations have not run yet.
    "42P01": "schema not migrated",
    "42703": "schema not migrated",
}
{%- endif %}


def unavailable_response() -> JSONResponse:
    return JSONResponse(UNAVAILABLE, status_code=503, headers={"Retry-After": "1"})
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot serve, or None when the error is not about availability."""
    if isinstance(exc, TimeoutError | PoolTimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError):
        return "unreachable"
    if isinstance(exc, DBAPIError):
        if isinstance(exc.orig, OSError):
            return "unreachable"
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        reason = UNAVAILABLE_SQLSTATES.get(sqlstate)
        if reason is not None:
            return reason
        reason = UNAVAILABLE_SQLSTATE_CLASSES.get(sqlstate[:2])
        if reason is not None:
            return reason
        if exc.connection_invalidated:
            return "connection lost"
    return None


async def database_error(request: Request, exc: Exception) -> Response:
    reason = unavailable_reason(exc)
    if reason is None:
        # Not about availability: a 500, with the traceback in the log.
        raise exc
    logger.warning("database unavailable", reason=reason, error=type(exc).__name__)
    return unavailable_response()
{%- elif cookiecutter.database == "mongodb" %}


async def database_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("database unavailable", error=type(exc).__name__)
    return unavailable_response()
{%- endif %}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path: the router's 405 names only one route's."""

    def served(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)

    allowed = {method for method in ("DELETE", "GET", "PATCH", "POST", "PUT") if served(method)}
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed | {"OPTIONS"})


async def http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        raise exc
    if exc.status_code == 405:
        allow = ", ".join(allowed_methods(request))
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allow})
        return JSONResponse(
            {"detail": "Method not allowed"}, status_code=405, headers={"Allow": allow}
        )
    return await http_exception_handler(request, exc)


def json_safe(value: object) -> object:
    """NaN and the infinities as text: Python's JSON parser reads them, JSON cannot carry them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


async def validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # registered for RequestValidationError only
        raise exc
    # FastAPI's own 422, which echoes the invalid input: with a NaN in it, it would fail as a 500.
    return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
{%- if cookiecutter.database == "postgresql" %}
    # asyncpg raises OSError (refused, unreachable) and TimeoutError before SQLAlchemy wraps them.
    app.add_exception_handler(OSError, database_error)
    app.add_exception_handler(PoolTimeoutError, database_error)
    app.add_exception_handler(DBAPIError, database_error)
{%- elif cookiecutter.database == "mongodb" %}
    # No server within MONGODB_TIMEOUT, or a connection lost or silent mid-request.
    app.add_exception_handler(ConnectionFailure, database_unavailable)
{%- endif %}
