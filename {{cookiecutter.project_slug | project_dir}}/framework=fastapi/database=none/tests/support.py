"""Helpers shared by the tests: the app, served in-process."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from opentelemetry.sdk.trace import TracerProvider

from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.main import create_app


@asynccontextmanager
async def serve(
    settings: Settings, tracer_provider: TracerProvider | None = None
) -> AsyncIterator[httpx.AsyncClient]:
{%- if cookiecutter.websockets == "yes" or cookiecutter.inference == "yes" %}
{%- if cookiecutter.websockets == "yes" %}
    """A fresh app, with an empty store and its lifespan running (the channels' hub, on the Redis
    at REDIS_URL{% if cookiecutter.inference == "yes" %}, and the model{% endif %}), and a client that talks to it in-process."""
{%- else %}
    """A fresh app, with an empty store and its lifespan running (the model loaded), and a client
    that talks to it in-process."""
{%- endif %}
    app = create_app(settings, tracer_provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
{%- else %}
    """A fresh app, with an empty store, and a client that talks to it in-process."""
    app = create_app(settings, tracer_provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
{%- endif %}
