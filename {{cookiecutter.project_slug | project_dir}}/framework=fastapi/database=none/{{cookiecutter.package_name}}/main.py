from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.api.routes import health, items
from {{ cookiecutter.package_name }}.core.limits import RequestLimitsMiddleware
from {{ cookiecutter.package_name }}.core.logging_config import configure_logging
from {{ cookiecutter.package_name }}.core.middleware import (
    AccessLogMiddleware,
    CloseWhenDrainingMiddleware,
)
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings
from {{ cookiecutter.package_name }}.store import ItemStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(title=settings.app_name)
    app.state.settings = settings
    app.state.items = ItemStore()
    app.include_router(health.router)
    app.include_router(items.router)
    # The last added runs first: request id, then the access log, then limits and draining.
    app.add_middleware(CloseWhenDrainingMiddleware)
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_query_bytes=settings.max_query_bytes,
    )
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    return app


app = create_app()
