"""gunicorn's master adds up what every worker process records (core/metrics_server.py)."""

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.core import metrics_server

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# A worker process: records requests answered and requests left unanswered, then exits.
WORKER = """
import sys

from {{ cookiecutter.package_name }}.core import metrics

answered, in_flight = int(sys.argv[1]), int(sys.argv[2])
for _ in range(answered):
    metrics.observe("GET", "/api/v1/items", 200, 0.02)
for _ in range(in_flight):
    metrics.IN_FLIGHT.inc()
"""
LABELS = {"method": "GET", "route": "/api/v1/items", "status": "200"}


@dataclass
class Master:
    directory: Path
    port: int

    def worker(self, answered: int, in_flight: int) -> int:
        """Run a worker with the master's directory, as gunicorn forks one; its pid."""
        process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
            [sys.executable, "-c", WORKER, str(answered), str(in_flight)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.directory)},
        )
        assert process.wait(timeout=60) == 0
        return process.pid

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def requests(self) -> float:
        return self.scrape().get(("http_requests_total", frozenset(LABELS.items())), 0.0)

    def in_flight(self) -> float:
        return self.scrape().get(("http_requests_in_flight", frozenset()), 0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Master]:
    directory = tmp_path / "metrics"
    metrics_server.clear(str(directory))
    port = free_port()
    server = metrics_server.serve(port, str(directory))
    try:
        yield Master(directory, port)
    finally:
        server.shutdown()
        server.server_close()


def test_the_master_adds_up_the_workers_and_forgets_only_the_in_flight_of_exited_ones(
    master: Master,
) -> None:
    first = master.worker(answered=3, in_flight=1)
    master.worker(answered=2, in_flight=2)

    assert master.requests() == 5
    assert master.in_flight() == 3
    timed = frozenset({"method": "GET", "route": "/api/v1/items"}.items())
    assert master.scrape()[("http_request_duration_seconds_count", timed)] == 5

    metrics_server.worker_exited(first, str(master.directory))

    assert master.in_flight() == 2
    assert master.requests() == 5


def test_a_start_clears_what_an_earlier_run_left_and_an_exit_removes_it(master: Master) -> None:
    master.worker(answered=4, in_flight=1)
    assert master.requests() == 4

    metrics_server.clear(str(master.directory))

    assert (master.requests(), master.in_flight()) == (0, 0)
    metrics_server.remove(str(master.directory))
    assert not master.directory.exists()
