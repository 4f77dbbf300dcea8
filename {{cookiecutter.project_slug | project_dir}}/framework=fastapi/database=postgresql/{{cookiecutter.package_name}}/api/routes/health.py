"""Probes: liveness touches nothing, readiness checks the database under a short time box."""

import asyncio

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from {{ cookiecutter.package_name }}.core.shutdown import is_draining

router = APIRouter(tags=["health"])
logger = structlog.get_logger(__name__)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    if is_draining():
        return not_ready("shutdown", "draining")
    try:
        async with (
            asyncio.timeout(settings.ready_timeout),
            request.app.state.engine.connect() as conn,
        ):
            await conn.execute(text("SELECT 1"))
    except TimeoutError:
        return not_ready("database", f"no answer within {settings.ready_timeout}s")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is reported as such
        return not_ready("database", type(exc).__name__)
    return JSONResponse({"status": "ready", "checks": {"database": "ok"}})


def not_ready(check: str, reason: str) -> JSONResponse:
    logger.warning("readiness check failed", check=check, reason=reason)
    return JSONResponse(
        {"status": "unavailable", "checks": {check: reason}},
        status_code=503,
    )
