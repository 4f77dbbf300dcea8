"""Turn a missing database into a fast 503 with a JSON body instead of a 500 and a traceback."""

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure

logger = structlog.get_logger(__name__)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable", error=type(exc).__name__)
    return JSONResponse(
        {"detail": "Database unavailable, try again later"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    # No server within MONGODB_TIMEOUT, or a connection lost or silent mid-request.
    app.add_exception_handler(ConnectionFailure, database_unavailable)
