{%- set inference = cookiecutter.inference == "yes" -%}
{%- set lifespan = cookiecutter.database != "none" or cookiecutter.websockets == "yes" or inference -%}
{%- set logs = cookiecutter.database != "none" or inference -%}
import gc
{%- if inference %}
import os
{%- endif %}
{%- if lifespan %}
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
{%- endif %}

{% if logs -%}
import structlog
{% endif -%}
from fastapi import FastAPI
{%- if inference %}
from gunicorn.arbiter import Arbiter
{%- endif %}
from opentelemetry.sdk.trace import TracerProvider

{% set routes = ["health", "items"] + (["channels"] if cookiecutter.websockets == "yes" else []) + (["predict"] if inference else []) -%}
from {{ cookiecutter.package_name }}.api.routes import {{ routes | sort | join(", ") }}
{% if cookiecutter.websockets == "yes" -%}
from {{ cookiecutter.package_name }}.channels.hub import ChannelHub
from {{ cookiecutter.package_name }}.channels.schemas import CloseCode
{% endif -%}
{% if inference -%}
from {{ cookiecutter.package_name }}.concurrency import inference_threads
{% endif -%}
from {{ cookiecutter.package_name }}.core import tracing
{%- if cookiecutter.database == "postgresql" %}
from {{ cookiecutter.package_name }}.core.db import create_engine, create_sessionmaker
{%- elif cookiecutter.database == "mongodb" %}
from {{ cookiecutter.package_name }}.core.db import create_client
{%- endif %}
from {{ cookiecutter.package_name }}.core.errors import install_error_handlers
from {{ cookiecutter.package_name }}.core.limits import RequestLimitsMiddleware
from {{ cookiecutter.package_name }}.core.logging_config import configure_logging
from {{ cookiecutter.package_name }}.core.middleware import EdgeMiddleware
{%- if cookiecutter.websockets == "yes" %}
from {{ cookiecutter.package_name }}.core.redis import create_redis
{%- endif %}
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings
{%- if cookiecutter.websockets == "yes" %}
from {{ cookiecutter.package_name }}.core.shutdown import on_drain_end
{%- endif %}
{%- if inference %}
from {{ cookiecutter.package_name }}.inference import model as inference_model
from {{ cookiecutter.package_name }}.inference.runner import InferenceRunner
{%- endif %}
{%- if cookiecutter.database == "none" %}
from {{ cookiecutter.package_name }}.store import ItemStore
{%- endif %}
{%- if logs %}

logger = structlog.get_logger(__name__)
{%- endif %}
{%- if lifespan %}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
{%- if inference %}
    try:
        model = inference_model.load(settings, inference_threads())
    except inference_model.ModelError as exc:
        # One line saying why, and the status on which gunicorn stops instead of restarting the
        # worker again and again; raising would print the framework's traceback instead.
        logger.critical("model not loaded", reason=str(exc))
        os._exit(Arbiter.WORKER_BOOT_ERROR)
    runner = InferenceRunner(
        model,
        concurrency=settings.inference_concurrency,
        queue_size=settings.inference_queue_size,
    )
    app.state.inference = runner
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
    engine = create_engine(settings)
    if app.state.tracer_provider is not None:
        tracing.instrument_engine(engine, app.state.tracer_provider)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    logger.info("database pool created", pool_size=settings.database_pool_size)
{%- elif cookiecutter.database == "mongodb" %}
    if app.state.tracer_provider is not None:
        tracing.instrument_client(app.state.tracer_provider)
    client = create_client(settings)
    app.state.database = client[settings.mongodb_database]
    logger.info("database client created", max_pool_size=settings.mongodb_max_pool_size)
{%- endif %}
{%- if cookiecutter.websockets == "yes" %}
    redis = create_redis(settings)
    hub = ChannelHub(
        redis, timeout=settings.redis_timeout, max_message_bytes=settings.ws_max_message_bytes
    )
    await hub.start()
    app.state.hub = hub
    # When the worker's drain ends (core/worker.py), before the server's own shutdown.
    remove_drain_hook = on_drain_end(
        lambda: hub.close_all(CloseCode.SERVICE_RESTART, "server restarting")
    )
{%- endif %}
    try:
        yield
    finally:
{%- if inference %}
        runner.close()
{%- endif %}
{%- if cookiecutter.websockets == "yes" %}
        remove_drain_hook()
        await hub.stop()
        await redis.aclose()
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
        await engine.dispose()
        logger.info("database pool disposed")
{%- elif cookiecutter.database == "mongodb" %}
        await client.close()
        logger.info("database client closed")
{%- endif %}
{%- endif %}


def create_app(
    settings: Settings | None = None, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    # The schema and the interactive docs built on it (/docs, /redoc) are a development aid: in
    # production the API's map is not handed to every client unless API_DOCS says so.
    openapi_url = "/openapi.json" if settings.serve_api_docs else None
{%- if cookiecutter.database == "none" %}
{%- if lifespan %}
    app = FastAPI(title=settings.app_name, openapi_url=openapi_url, lifespan=lifespan)
{%- else %}
    app = FastAPI(title=settings.app_name, openapi_url=openapi_url)
{%- endif %}
    app.state.settings = settings
    app.state.items = ItemStore(max_items=settings.max_items)
{%- else %}
    app = FastAPI(title=settings.app_name, openapi_url=openapi_url, lifespan=lifespan)
    app.state.settings = settings
    app.state.tracer_provider = tracer_provider
{%- endif %}
    app.include_router(health.router)
    app.include_router(items.router)
{%- if cookiecutter.websockets == "yes" %}
    app.include_router(channels.router)
{%- endif %}
{%- if inference %}
    app.include_router(predict.router)
{%- endif %}
    install_error_handlers(app)
    # The last added runs first: the edge (request id, access event, last-resort 500), then limits.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_query_bytes=settings.max_query_bytes,
    )
    app.add_middleware(EdgeMiddleware)
    if tracer_provider is not None:
        tracing.instrument_app(app, tracer_provider)
    return app


# Built in each gunicorn worker after the fork (gunicorn.conf.py does not preload the app): the
# exporter's thread runs in the process whose requests it traces.
app = create_app(tracer_provider=tracing.start_tracing())
# What is built by now lives as long as the worker: frozen out of the garbage collector's
# reach, a full collection walks only what requests allocate instead of stalling every
# request in flight while it walks the framework's hundred thousand objects.
gc.freeze()
