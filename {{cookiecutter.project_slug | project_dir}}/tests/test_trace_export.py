"""Traces leave gunicorn's workers over OTLP/HTTP, and the last ones still do as a worker stops.

The receiver here decodes what the exporter sends, as an OpenTelemetry Collector would.
"""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Receiver(ThreadingHTTPServer):
    """Keeps (service.name, span name, kind) of every span posted to /v1/traces."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.spans: list[tuple[str, str, int]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.server.spans += [
                    (attributes["service.name"], span.name, span.kind) for span in scope_spans.spans
                ]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test reads the spans, not the requests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def answers(url: str) -> bool:
    try:
        return get(url) == 200
    except OSError:
        return False


def test_workers_export_their_spans_and_send_the_last_ones_when_stopped(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        # Nothing leaves on the batch's schedule: what arrives, the stopping workers sent.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "PORT": url.rpartition(":")[2],
        "WEB_CONCURRENCY": "2",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_FORMAT": "json",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not answers(url + "/health"):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # Paths that need no database, each a request span all the same.
        statuses = [get(f"{url}/api/v1/nowhere/{n}") for n in range(4)]
        assert receiver.spans == []
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert statuses == [404] * 4
    requests = [span for span in receiver.spans if span[2] == Span.SPAN_KIND_SERVER]
    expected = ("{{ cookiecutter.project_slug }}", "GET", Span.SPAN_KIND_SERVER)
    assert requests == [expected] * 4, log.read_text()
