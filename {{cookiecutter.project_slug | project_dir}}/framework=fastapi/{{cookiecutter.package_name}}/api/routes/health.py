{% if cookiecutter.database == "postgresql" and cookiecutter.websockets == "yes" -%}
"""Probes: liveness touches nothing, readiness checks the database and Redis, time-boxed.

HEAD is answered like GET (core/middleware.py), as probes and load balancers may use either.
"""

import asyncio
{%- elif cookiecutter.database == "mongodb" and cookiecutter.websockets == "yes" -%}
"""Probes: liveness touches nothing, readiness pings the database and Redis, time-boxed.

HEAD is answered like GET (core/middleware.py), as probes and load balancers may use either.
"""

import asyncio
{%- elif cookiecutter.websockets == "yes" -%}
"""Probes: liveness touches nothing, readiness pings Redis under a short time box.

HEAD is answered like GET (core/middleware.py), as probes and load balancers may use either.
"""
{%- elif cookiecutter.database == "postgresql" -%}
"""Probes: liveness touches nothing, readiness checks the database under a short time box.

HEAD is answered like GET (core/middleware.py), as probes and load balancers may use either.
"""

import asyncio
{%- elif cookiecutter.database == "mongodb" -%}
"""Probes: liveness touches nothing, readiness pings the database under a short time box.

HEAD is answered like GET (core/middleware.py), as probes and load balancers may use either.
"""

import asyncio
{%- elif cookiecutter.inference == "yes" -%}
"""Probes: liveness and readiness; ready means the model is warm and the worker not draining.

HEAD is answered like GET (core/middleware.py), as probes and load balancers may use either.
"""
{%- else -%}
"""Probes: liveness and readiness; without a database, ready means serving and not draining.

HEAD is answered like GET (core/middleware.py), as probes and load balancers may use either.
"""
{%- endif %}

import structlog
{%- if cookiecutter.database == "none" and cookiecutter.websockets == "no" %}
from fastapi import APIRouter
{%- else %}
from fastapi import APIRouter, Request
{%- endif %}
from fastapi.responses import JSONResponse
{%- if cookiecutter.database != "none" %}
from opentelemetry.instrumentation.utils import suppress_instrumentation
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
from sqlalchemy import ARRAY, String, bindparam, text
{%- endif %}

{% if cookiecutter.database == "postgresql" -%}
from {{ cookiecutter.package_name }}.core.db import Base
from {{ cookiecutter.package_name }}.core.errors import unavailable_reason
{% endif -%}
from {{ cookiecutter.package_name }}.core.shutdown import is_draining

router = APIRouter(tags=["health"])
logger = structlog.get_logger(__name__)
{%- if cookiecutter.database == "postgresql" %}

# Looked up by name, which takes no lock: a migration holding a table does not make pods unready.
MISSING_TABLES = text(
    "SELECT name FROM unnest(:names) AS name WHERE to_regclass(name) IS NULL ORDER BY name"
).bindparams(bindparam("names", type_=ARRAY(String)))
{%- endif %}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "Not ready: the failing check says why"}})
{%- if cookiecutter.database == "none" and cookiecutter.websockets == "yes" %}
async def ready(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    if is_draining():
        return not_ready("shutdown", "draining")
    reason = await request.app.state.hub.unready_reason(settings.ready_timeout)
    if reason is not None:
        return not_ready("redis", reason)
{%- if cookiecutter.inference == "yes" %}
    # The model answered its warm-up inference in the lifespan, before the first request.
    return JSONResponse({"status": "ready", "checks": {"redis": "ok", "model": "ok"}})
{%- else %}
    return JSONResponse({"status": "ready", "checks": {"redis": "ok"}})
{%- endif %}
{%- elif cookiecutter.database == "none" %}
async def ready() -> JSONResponse:
    if is_draining():
        return not_ready("shutdown", "draining")
{%- if cookiecutter.inference == "yes" %}
    # The model answered its warm-up inference in the lifespan, before the first request.
    return JSONResponse({"status": "ready", "checks": {"model": "ok"}})
{%- else %}
    # A dependency the service cannot serve without (a database, a broker) gets a time-boxed
    # check here, reported under "checks"; a failing one answers 503.
    return JSONResponse({"status": "ready", "checks": {}})
{%- endif %}
{%- else %}
async def ready(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    if is_draining():
        return not_ready("shutdown", "draining")
    try:
        # No spans for the check, as for the probe itself (core/tracing.py).
        with suppress_instrumentation():
{%- if cookiecutter.database == "postgresql" %}
            async with (
                asyncio.timeout(settings.ready_timeout),
                request.app.state.engine.connect() as conn,
            ):
                # Every table the models declare: a database that was never migrated is not ready.
                tables = sorted(Base.metadata.tables)
                missing = (await conn.scalars(MISSING_TABLES, {"names": tables})).all()
{%- elif cookiecutter.database == "mongodb" %}
            async with asyncio.timeout(settings.ready_timeout):
                await request.app.state.database.command("ping")
{%- endif %}
    except TimeoutError:
        return not_ready("database", f"no answer within {settings.ready_timeout}s")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is reported as such
{%- if cookiecutter.database == "postgresql" %}
        return not_ready("database", unavailable_reason(exc) or type(exc).__name__)
    if missing:
        return not_ready("database", f"schema not migrated (no table {', '.join(missing)})")
{%- else %}
        return not_ready("database", type(exc).__name__)
{%- endif %}
{%- if cookiecutter.websockets == "yes" %}
    reason = await request.app.state.hub.unready_reason(settings.ready_timeout)
    if reason is not None:
        return not_ready("redis", reason)
{%- if cookiecutter.inference == "yes" %}
    # The model answered its warm-up inference in the lifespan, before the first request.
    return JSONResponse(
        {"status": "ready", "checks": {"database": "ok", "redis": "ok", "model": "ok"}}
    )
{%- else %}
    return JSONResponse({"status": "ready", "checks": {"database": "ok", "redis": "ok"}})
{%- endif %}
{%- elif cookiecutter.inference == "yes" %}
    # The model answered its warm-up inference in the lifespan, before the first request.
    return JSONResponse({"status": "ready", "checks": {"database": "ok", "model": "ok"}})
{%- else %}
    return JSONResponse({"status": "ready", "checks": {"database": "ok"}})
{%- endif %}
{%- endif %}


def not_ready(check: str, reason: str) -> JSONResponse:
    logger.warning("readiness check failed", check=check, reason=reason)
    return JSONResponse(
        {"status": "unavailable", "checks": {check: reason}},
        status_code=503,
    )
