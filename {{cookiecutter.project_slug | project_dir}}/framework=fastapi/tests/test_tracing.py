"""Tracing: what a traced request records, and that the probes record nothing.

{% if cookiecutter.database == "postgresql" -%}
A request is a span, with one under it for each query, and its log lines carry the span's ids.
{%- else -%}
A request is a span, and its log lines carry the span's ids.
{%- endif %}
The spans go to an in-memory exporter through a provider of the tests' own; the deployed path
(OTEL_EXPORTER_OTLP_ENDPOINT) is checked in a fresh interpreter, loading what gunicorn loads.
{%- if cookiecutter.database == "mongodb" %}
Without a MongoDB server no command runs, so no command span can be checked: what is, is that
the database client reports its commands to the tracer.
{%- endif %}
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
{%- if cookiecutter.database == "postgresql" %}
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
{%- elif cookiecutter.database == "mongodb" %}
from opentelemetry.instrumentation.pymongo import CommandTracer, PymongoInstrumentor
{%- endif %}
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from {{ cookiecutter.package_name }}.core.settings import Settings
{%- if cookiecutter.database == "mongodb" %}
from {{ cookiecutter.package_name }}.main import create_app
{%- endif %}
from tests.support import serve

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@asynccontextmanager
async def serve_traced(
    settings: Settings, tracer_provider: TracerProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """The app traced as start_tracing() has it traced, with this provider."""
{%- if cookiecutter.database == "none" %}
    async with serve(settings, tracer_provider) as client:
        yield client
{%- else %}
    try:
        async with serve(settings, tracer_provider) as client:
            yield client
    finally:
        # Process-wide, like every instrumentation: the other tests run untraced.
{%- if cookiecutter.database == "postgresql" %}
        SQLAlchemyInstrumentor().uninstrument()
{%- else %}
        PymongoInstrumentor().uninstrument()
{%- endif %}
{%- endif %}


@pytest.fixture
async def traced(
    settings: Settings, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    """Its spans kept in `exporter`."""
    exporter.clear()
    async with serve_traced(settings, tracer_provider) as client:
        yield client


def server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    return span


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


{% if cookiecutter.database == "postgresql" -%}
async def test_a_request_and_its_queries_are_spans_of_one_trace(
{%- else -%}
async def test_a_request_is_a_span(
{%- endif %}
    traced: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    response = await traced.get("/api/v1/items")

{%- if cookiecutter.database == "mongodb" %}

    # No server: the route answers 503, and is traced all the same.
    assert response.status_code == 503
{%- else %}

    assert response.status_code == 200
{%- endif %}
    server = server_span(exporter)
    assert server.name == "GET /api/v1/items"
{%- if cookiecutter.database == "postgresql" %}
    queries = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.CLIENT]
    assert any(span.name.startswith("SELECT") for span in queries)
    for query in queries:
        assert query.context.trace_id == server.context.trace_id
        assert query.parent is not None
        assert query.parent.span_id == server.context.span_id
{%- endif %}
{%- if cookiecutter.database == "mongodb" %}


async def test_the_database_client_reports_its_commands_to_the_tracer(
    settings: Settings, tracer_provider: TracerProvider
) -> None:
    app = create_app(settings, tracer_provider)
    try:
        async with app.router.lifespan_context(app):
            listeners = app.state.database.client.options.event_listeners
    finally:
        PymongoInstrumentor().uninstrument()

    assert any(isinstance(listener, CommandTracer) for listener in listeners)
{%- endif %}


async def test_log_lines_of_a_traced_request_carry_its_trace_and_span_ids(
    traced: httpx.AsyncClient, exporter: InMemorySpanExporter, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    await traced.get("/api/v1/items")

    server = server_span(exporter)
    events = json_lines(capfd.readouterr().out)
    [access] = [event for event in events if event["event"] == "request"]
    assert re.fullmatch(r"[0-9a-f]{32}", access["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", access["span_id"])
    assert access["trace_id"] == format_trace_id(server.context.trace_id)
    assert access["span_id"] == format_span_id(server.context.span_id)


async def test_a_request_whose_trace_is_not_kept_logs_no_ids(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    async with serve_traced(settings, TracerProvider(sampler=ALWAYS_OFF)) as client:
        capfd.readouterr()
        await client.get("/api/v1/items")
        events = json_lines(capfd.readouterr().out)

    [access] = [event for event in events if event["event"] == "request"]
    assert "trace_id" not in access
    assert "span_id" not in access


async def test_probes_make_no_spans_and_their_log_lines_no_ids(
    traced: httpx.AsyncClient, exporter: InMemorySpanExporter, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    for path in ("/health", "/ready"):
        await traced.get(path)

    assert exporter.get_finished_spans() == ()
    events = json_lines(capfd.readouterr().out)
    assert [event["path"] for event in events if event["event"] == "request"] == [
        "/health",
        "/ready",
    ]
    assert not [event for event in events if "trace_id" in event or "span_id" in event]


# What a gunicorn worker runs: the master reads gunicorn.conf.py, each worker then imports the app.
STARTUP = """
import runpy, threading
from opentelemetry import trace

config = runpy.run_path("gunicorn.conf.py")
print(config.get("preload_app", False), type(trace.get_tracer_provider()).__name__)
import {{ cookiecutter.package_name }}.main
print(type(trace.get_tracer_provider()).__name__)
print(sorted(thread.name for thread in threading.enumerate()))
"""


@pytest.mark.parametrize(
    ("endpoint", "provider"),
    [(None, "ProxyTracerProvider"), ("http://127.0.0.1:4318", "TracerProvider")],
    ids=["endpoint unset", "endpoint set"],
)
def test_tracing_starts_in_the_worker_loading_the_app_when_an_endpoint_is_set(
    endpoint: str | None, provider: str
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint

    result = subprocess.run(  # noqa: S603 - fixed command line
        [sys.executable, "-c", STARTUP],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    master, worker, threads = result.stdout.splitlines()[-3:]
    # No preloading, and nothing started in the master: the exporter's thread would not survive
    # the fork into the workers.
    assert master == "False ProxyTracerProvider"
    assert worker == provider
    assert ("OtelBatchSpanRecordProcessor" in threads) == (endpoint is not None)
