"""OpenTelemetry traces, sent over OTLP/HTTP once OTEL_EXPORTER_OTLP_ENDPOINT is set.

The SDK reads the rest of its configuration from the standard OTEL_* variables (README, Tracing).
{% if cookiecutter.framework == "django" -%}
Each process that serves requests starts tracing as it loads the app (asgi.py, or wsgi.py in
`make run`): gunicorn imports the app in every worker after forking it, so the master never
starts the BatchSpanProcessor, whose exporting thread a fork would not carry over.
{%- else -%}
Each process that serves requests starts tracing as it loads the app (main.py): gunicorn imports
the app in every worker after forking it, so the master never starts the BatchSpanProcessor,
whose exporting thread a fork would not carry over.
{%- endif %}
"""

import os
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
{%- if cookiecutter.framework == "fastapi" %}
    from fastapi import FastAPI
{%- endif %}
    from opentelemetry.sdk.trace import TracerProvider
{%- if cookiecutter.framework == "fastapi" and cookiecutter.database == "postgresql" %}
    from sqlalchemy.ext.asyncio import AsyncEngine
{%- endif %}

# The SDK, the exporter and the instrumentations are imported only once tracing is on: with it
# off, they would cost every worker about 5 MiB and 90 ms of start-up for nothing.

# The probes, polled every few seconds, would bury the requests' traces: regular expressions
# matched against each request's URL.
UNTRACED_URLS = r"^[a-z]+://[^/]+/(health|ready)$"


def start_tracing() -> "TracerProvider | None":
    """The process's tracer provider, exporting in batches; None when tracing is off."""
    if not tracing_enabled():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, or a service.name in OTEL_RESOURCE_ATTRIBUTES, wins over the default.
    default = Resource.create({SERVICE_NAME: "{{ cookiecutter.project_slug }}"})
    resource = default.merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
{%- if cookiecutter.framework == "django" %}
    instrument(provider)
{%- endif %}
    return provider


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: the current span's ids, as tracing backends show them.

    Only for a trace that is kept (sampled): the ids of others lead nowhere. A request's span
    stays current until the request is done, also once it has ended with the response.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


def tracing_enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def stop_tracing() -> None:
    """Send the spans still waiting for their batch, if tracing is on; no more are sent."""
    if not tracing_enabled():
        return
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
{%- if cookiecutter.framework == "django" %}


def instrument(tracer_provider: "TracerProvider") -> None:
    """A span for each request{% if cookiecutter.database == "postgresql" %} and each query{% endif %}.

    Called before the application is built: Django reads the middleware list, which this extends,
    once, as it builds it.
    """
    from opentelemetry.instrumentation.django import DjangoInstrumentor
{%- if cookiecutter.database == "postgresql" %}
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
{%- endif %}

    DjangoInstrumentor().instrument(tracer_provider=tracer_provider, excluded_urls=UNTRACED_URLS)
{%- if cookiecutter.database == "postgresql" %}
    PsycopgInstrumentor().instrument(tracer_provider=tracer_provider)
{%- endif %}
{%- else %}


def instrument_app(app: "FastAPI", tracer_provider: "TracerProvider") -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=UNTRACED_URLS,
        # One span per request, not one more for every message of its body.
        exclude_spans=["receive", "send"],
    )
{%- if cookiecutter.database == "postgresql" %}


def instrument_engine(engine: "AsyncEngine", tracer_provider: "TracerProvider") -> None:
    """A span for each query, and for each wait for a pooled connection."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentation declares SQLAlchemy below 2.1, the versions its own tests cover, and
    # skips instrumenting anything newer unless told; the engine events it listens to are the
    # same in 2.1 (tests/test_tracing.py checks the spans).
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=tracer_provider, skip_dep_check=True
    )
{%- elif cookiecutter.database == "mongodb" %}


def instrument_client(tracer_provider: "TracerProvider") -> None:
    """A span for each command of the clients created from now on."""
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument(tracer_provider=tracer_provider)
{%- endif %}
{%- endif %}
