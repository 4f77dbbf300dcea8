"""Turn a missing database into a fast 503 with a JSON body instead of a 500 and a traceback."""

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
{%- if cookiecutter.database == "postgresql" %}
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
{%- elif cookiecutter.database == "mongodb" %}
from pymongo.errors import ConnectionFailure
{%- endif %}

logger = structlog.get_logger(__name__)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable", error=type(exc).__name__)
    return JSONResponse(
        {"detail": "Database unavailable, try again later"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
{%- if cookiecutter.database == "postgresql" %}


def is_connection_error(exc: DBAPIError) -> bool:
    return exc.connection_invalidated or isinstance(exc.orig, OSError)


async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    if is_connection_error(exc):
        return await database_unavailable(request, exc)
    raise exc
{%- endif %}


def install_error_handlers(app: FastAPI) -> None:
{%- if cookiecutter.database == "postgresql" %}
    # asyncpg raises OSError (connection refused, unreachable) before SQLAlchemy can wrap it.
    app.add_exception_handler(OSError, database_unavailable)
    app.add_exception_handler(PoolTimeoutError, database_unavailable)
    app.add_exception_handler(DBAPIError, database_error)
{%- elif cookiecutter.database == "mongodb" %}
    # No server within MONGODB_TIMEOUT, or a connection lost or silent mid-request.
    app.add_exception_handler(ConnectionFailure, database_unavailable)
{%- endif %}
