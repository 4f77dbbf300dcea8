{% if cookiecutter.database == "postgresql" -%}
"""Probes: liveness touches nothing, readiness checks the database under a short time box."""

import asyncio
{%- elif cookiecutter.database == "mongodb" -%}
"""Probes: liveness touches nothing, readiness pings the database under a short time box."""

import asyncio
{%- else -%}
"""Probes: liveness and readiness; without a database, ready means serving and not draining."""
{%- endif %}

import structlog
{%- if cookiecutter.database == "none" %}
from fastapi import APIRouter
{%- else %}
from fastapi import APIRouter, Request
{%- endif %}
from fastapi.responses import JSONResponse
{%- if cookiecutter.database == "postgresql" %}
from sqlalchemy import text
{%- endif %}

from {{ cookiecutter.package_name }}.core.shutdown import is_draining

router = APIRouter(tags=["health"])
logger = structlog.get_logger(__name__)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
{%- if cookiecutter.database == "none" %}
async def ready() -> JSONResponse:
    if is_draining():
        return not_ready("shutdown", "draining")
    # Add a check here for each dependency the service gets, as the database versions do.
    return JSONResponse({"status": "ready", "checks": {}})
{%- else %}
async def ready(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    if is_draining():
        return not_ready("shutdown", "draining")
    try:
{%- if cookiecutter.database == "postgresql" %}
        async with (
            asyncio.timeout(settings.ready_timeout),
            request.app.state.engine.connect() as conn,
        ):
            await conn.execute(text("SELECT 1"))
{%- elif cookiecutter.database == "mongodb" %}
        async with asyncio.timeout(settings.ready_timeout):
            await request.app.state.database.command("ping")
{%- endif %}
    except TimeoutError:
        return not_ready("database", f"no answer within {settings.ready_timeout}s")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is reported as such
        return not_ready("database", type(exc).__name__)
    return JSONResponse({"status": "ready", "checks": {"database": "ok"}})
{%- endif %}


def not_ready(check: str, reason: str) -> JSONResponse:
    logger.warning("readiness check failed", check=check, reason=reason)
    return JSONResponse(
        {"status": "unavailable", "checks": {check: reason}},
        status_code=503,
    )
