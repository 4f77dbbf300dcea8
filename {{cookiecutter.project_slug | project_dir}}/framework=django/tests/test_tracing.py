"""Tracing: what a traced request records, and that the probes record nothing.

{% if cookiecutter.database == "postgresql" -%}
A request is a span, with one under it for each query, and its log lines carry the span's ids.
{%- else -%}
A request is a span, and its log lines carry the span's ids.
{%- endif %}
The spans go to an in-memory exporter through a provider of the tests' own; the deployed path
(OTEL_EXPORTER_OTLP_ENDPOINT) is checked in a fresh interpreter, loading what gunicorn loads.
"""

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.asgi import get_asgi_application
{%- if cookiecutter.database == "postgresql" %}
from django.db import DEFAULT_DB_ALIAS, connections
{%- endif %}
from django.test import Client
from opentelemetry.instrumentation.django import DjangoInstrumentor
{%- if cookiecutter.database == "postgresql" %}
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
{%- endif %}
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from {{ cookiecutter.package_name }}.core.serving import ServingApplication
from {{ cookiecutter.package_name }}.core.tracing import instrument
{%- if cookiecutter.database == "postgresql" %}
from tests.support import PROJECT_ROOT, SERVER_URL, app_env, json_lines

# The requests run on the server layer's threads, and the tests replace the connection pool: no
# test transaction can wrap that.
pytestmark = pytest.mark.django_db(transaction=True)
{%- else %}
from tests.support import PROJECT_ROOT, app_env, json_lines
{%- endif %}


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
{%- if cookiecutter.database == "postgresql" %}


def new_connection_pool() -> None:
    """Connections are traced or not from when they are opened: open new ones from now on."""
    connection = connections[DEFAULT_DB_ALIAS]
    connection.close()
    connection.close_pool()
{%- endif %}


@pytest.fixture
def traced(
    tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> Iterator[InMemorySpanExporter]:
    """Django instrumented as start_tracing() does it, its spans kept in `exporter`."""
    instrument(tracer_provider)
{%- if cookiecutter.database == "postgresql" %}
    new_connection_pool()
{%- endif %}
    exporter.clear()
    yield exporter
    # Process-wide, like every instrumentation: the other tests run untraced.
    DjangoInstrumentor().uninstrument()
{%- if cookiecutter.database == "postgresql" %}
    PsycopgInstrumentor().uninstrument()
    new_connection_pool()
{%- endif %}


def get(path: str) -> int:
    """GET `path` from the application gunicorn serves (asgi.py), built now; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 40000),
    }
    body = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not body:
            # The client stays connected: Django gives up on a request whose client left.
            await asyncio.Event().wait()
        return body.pop()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await ServingApplication(get_asgi_application())(scope, receive, send)

    asyncio.run(run())
    return sent[0]["status"]


def server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    return span
{%- if cookiecutter.database == "postgresql" %}


def statement(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get("db.statement", ""))
{%- endif %}


{% if cookiecutter.database == "postgresql" -%}
def test_a_request_and_its_queries_are_spans_of_one_trace(traced: InMemorySpanExporter) -> None:
{%- else -%}
def test_a_request_is_a_span(traced: InMemorySpanExporter) -> None:
{%- endif %}
    assert get("/api/v1/items") == 200

    server = server_span(traced)
    assert server.name == "GET api/v1/items"
{%- if cookiecutter.database == "postgresql" %}
    # The page and the count. (The pool sets up its connections in threads of its own, outside
    # any request: those queries are traces of their own.)
    queries = [span for span in traced.get_finished_spans() if "items_item" in statement(span)]
    assert [span.name for span in queries] == ["SELECT", "SELECT"]
    for query in queries:
        assert query.context.trace_id == server.context.trace_id
        assert query.parent is not None
        assert query.parent.span_id == server.context.span_id
{%- endif %}


def test_log_lines_of_a_traced_request_carry_its_trace_and_span_ids(
    traced: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    get("/api/v1/items")

    server = server_span(traced)
    events = [
        event
        for event in json_lines(capsys.readouterr().out)
        if event.get("request") == "GET /api/v1/items"
    ]
    assert [event["event"] for event in events] == ["request_started", "request_finished"]
    for event in events:
        assert re.fullmatch(r"[0-9a-f]{32}", event["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", event["span_id"])
        assert event["trace_id"] == format_trace_id(server.context.trace_id)
        assert event["span_id"] == format_span_id(server.context.span_id)


def test_probes_make_no_spans_and_their_log_lines_no_ids(
    traced: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # Answered before Django by the server layer, and by Django in the development server.
    assert [get("/health"), get("/ready")] == [200, 200]
    assert [Client().get(path).status_code for path in ("/health", "/ready")] == [200, 200]

    assert traced.get_finished_spans() == ()
    events = json_lines(capsys.readouterr().out)
    assert events
    assert not [event for event in events if "trace_id" in event or "span_id" in event]


# What a gunicorn worker runs: the master reads gunicorn.conf.py, each worker then imports the app.
STARTUP = """
import runpy, threading
from opentelemetry import trace

config = runpy.run_path("gunicorn.conf.py")
print(config.get("preload_app", False), type(trace.get_tracer_provider()).__name__)
import {{ cookiecutter.package_name }}.asgi
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
{%- if cookiecutter.database == "postgresql" %}
    env = app_env(SERVER_URL)
{%- else %}
    env = app_env()
{%- endif %}
    env = {name: value for name, value in env.items() if not name.startswith("OTEL_")}
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
