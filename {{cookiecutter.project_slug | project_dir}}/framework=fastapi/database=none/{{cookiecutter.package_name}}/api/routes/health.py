"""Probes: liveness and readiness; without a database, ready means serving and not draining."""

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from {{ cookiecutter.package_name }}.core.shutdown import is_draining

router = APIRouter(tags=["health"])
logger = structlog.get_logger(__name__)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready() -> JSONResponse:
    if is_draining():
        return not_ready("shutdown", "draining")
    # Add a check here for each dependency the service gets, as the database versions do.
    return JSONResponse({"status": "ready", "checks": {}})


def not_ready(check: str, reason: str) -> JSONResponse:
    logger.warning("readiness check failed", check=check, reason=reason)
    return JSONResponse(
        {"status": "unavailable", "checks": {check: reason}},
        status_code=503,
    )
