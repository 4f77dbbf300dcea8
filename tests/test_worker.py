"""The event worker against real brokers: exactly-once effects, shutdown, poison, outages.

For each framework and broker, a rendered project (worker=<broker>, database=postgresql) runs
as its pods do: the web service as its container starts it, and two worker processes with the
worker Deployment's command, on the real PostgreSQL and the shared RabbitMQ (unique queue names
per test) or a tansu Kafka-protocol broker this module starts. The brokers sit behind a TcpProxy
from the start, so an outage is a cut proxy, never a stopped server.

The scenarios run chained in one test per combination, on one database and one queue or topic:
each phase starts from the previous one's state and the exactly-once check at the end covers
them all. (pytest-xdist spreads a module's tests over its workers, so chained tests would not
share their processes.)
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hooks.bakery.facts import Worker, derive
from testkit import brokers
from testkit.deployment import Deployed, run_migrations
from testkit.services import (
    Service,
    TcpProxy,
    collect_static,
    database_url,
    free_port,
    pod_environment,
    psql,
    throwaway_database,
)
from testkit.template import choice_options, defaults

pytestmark = pytest.mark.worker

FRAMEWORKS = choice_options()["framework"]
BROKERS = [answer for answer in choice_options()["worker"] if answer != "none"]
COMBINATIONS = [(framework, broker) for framework in FRAMEWORKS for broker in BROKERS]

ITEMS = "/api/v1/items"
# Short budgets, so the scenarios fit the suite's time: the defaults are documented in facts.
GRACEFUL_TIMEOUT = 5
SHUTDOWN_MARGIN = 5
MAX_ATTEMPTS = 3
PARTITIONS = 3
SETTLE_SECONDS = 60
# Beyond PostgreSQL's integer: a valid event whose effect can never be stored.
UNSTORABLE_ITEM_ID = 9_999_999_999
# Their RabbitMQ message ids and Kafka keys: the unstorable event, bytes that are not JSON, and
# JSON that is not an event.
POISON_KEYS = (str(UNSTORABLE_ITEM_ID), "not-json", "not-an-event")
# (items, outbox, effects) per framework, as the migrations create them.
TABLES = {
    "fastapi": ("items", "outbox", "audit_entries"),
    "django": ("items_item", "items_outboxevent", "items_auditentry"),
}


@dataclass(frozen=True)
class WorkerProject:
    deployed: Deployed
    worker: Worker


_INSTALLED: dict[tuple[str, str], WorkerProject] = {}


@pytest.fixture(scope="session")
def worker_projects(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], WorkerProject]:
    """One bake and venv per framework and broker and session, as its image would hold it."""

    def install(framework: str, broker: str) -> WorkerProject:
        if (framework, broker) not in _INSTALLED:
            answers = {**defaults(), "framework": framework, "database": "postgresql"}
            answers["worker"] = broker
            baked_project = baked(**answers)
            project = tmp_path_factory.mktemp(f"{framework}-{broker}") / baked_project.name
            shutil.copytree(baked_project, project)
            venv = project_venv(project)
            collect_static(project, venv)
            slug = project.name
            facts = derive(
                {**answers, "project_slug": slug, "package_name": slug.replace("-", "_")}
            )
            assert facts.worker is not None
            deployed = Deployed(framework, project, venv, pod_environment(framework))
            _INSTALLED[framework, broker] = WorkerProject(deployed, facts.worker)
        return _INSTALLED[framework, broker]

    return install


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[brokers.Tansu]:
    """A Kafka-protocol broker of the test's own, behind a proxy it advertises.

    Per test, not per module: it starts in milliseconds, and tansu's group coordinator has been
    seen to stop assigning partitions after many members came and went on one broker process.
    """
    with brokers.running_tansu(tmp_path / "tansu.log", proxied=True) as broker:
        yield broker


@dataclass
class BrokerUnderTest:
    """The queue or topic of one test, the proxy in front of its broker, and what it holds."""

    kind: str
    events: str
    proxy: TcpProxy
    url: str
    bootstrap: str = ""
    group: str = ""

    @property
    def dead_letter(self) -> str:
        return f"{self.events}.dead-letter"

    def env(self) -> dict[str, str]:
        env = {"BROKER_URL": self.url}
        if self.kind == "rabbitmq":
            env["EVENTS_QUEUE"] = self.events
        else:
            env |= {
                "EVENTS_TOPIC": self.events,
                "KAFKA_CONSUMER_GROUP": self.group,
                "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
            }
        return env

    def publish(self, body: bytes, key: str) -> None:
        """Straight to the broker, as a misbehaving producer would, bypassing the outbox."""
        if self.kind == "rabbitmq":
            brokers.rabbit_publish(self.events, [body], message_ids=[key])
        else:
            brokers.kafka_produce(self.bootstrap, self.events, [(key.encode(), body)])

    def dead_letters(self) -> list[brokers.Received]:
        if self.kind == "rabbitmq":
            return brokers.rabbit_take(self.dead_letter)
        return brokers.kafka_read(self.bootstrap, self.dead_letter)

    def dead_letter_count(self) -> int:
        if self.kind == "rabbitmq":
            return brokers.rabbit_queue_depth(self.dead_letter) or 0
        return len(brokers.kafka_read(self.bootstrap, self.dead_letter))


@pytest.fixture
def broker_under_test(request: pytest.FixtureRequest) -> Iterator[BrokerUnderTest]:
    kind = request.node.callspec.params["combination"][1]
    events = brokers.unique_name()
    if kind == "rabbitmq":
        if (problem := brokers.rabbitmq_available()) is not None:
            pytest.fail(problem, pytrace=False)
        proxy = TcpProxy(target_port=brokers.rabbitmq_port())
        proxy.start()
        broker = BrokerUnderTest(kind, events, proxy, brokers.rabbitmq_url(proxy.port))
        try:
            yield broker
        finally:
            proxy.shutdown()
            names = [events, broker.dead_letter]
            brokers.rabbit_delete(queues=names, exchanges=names)
    else:
        tansu: brokers.Tansu = request.getfixturevalue("tansu")
        assert tansu.proxy is not None
        group = f"{events}-worker"
        yield BrokerUnderTest(kind, events, tansu.proxy, tansu.bootstrap, tansu.bootstrap, group)


@dataclass
class Pipeline:
    """The web service and the worker processes of one combination, and their tables."""

    project: WorkerProject
    broker: BrokerUnderTest
    database: str
    logs: Path
    web: Service | None = None
    workers: list[Service] = field(default_factory=list)
    stopped: list[Service] = field(default_factory=list)

    @property
    def tables(self) -> tuple[str, str, str]:
        return TABLES[self.project.deployed.framework]

    def env(self) -> dict[str, str]:
        return {
            **self.project.deployed.env,
            **self.broker.env(),
            "DATABASE_URL": database_url(self.database),
            "CONSUMER_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
            "CONSUMER_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "OUTBOX_POLL_INTERVAL": "0.1",
        }

    def start_web(self) -> Service:
        deployed = self.project.deployed
        # One gunicorn worker: the machine has two cores, and the worker processes need them. No
        # drain on stop: the web service's shutdown is test_reliability's subject, not this one.
        env = {**self.env(), "WEB_CONCURRENCY": "1", "SHUTDOWN_DRAIN_SECONDS": "0"}
        self.web = Service(deployed.project, deployed.venv, env, self.logs / "web.log")
        return self.web.start()

    def start_worker(self) -> Service:
        deployed = self.project.deployed
        port = free_port()
        worker = Service(
            deployed.project,
            deployed.venv,
            {**self.env(), "CONSUMER_PORT": str(port)},
            self.logs / f"worker-{len(self.workers) + len(self.stopped)}.log",
            port=port,
            command=list(self.project.worker.command),
        )
        self.workers.append(worker)
        return worker.start()

    def stop(self) -> None:
        services = [*self.workers, *self.stopped, *([self.web] if self.web else [])]
        for service in services:  # all asked at once, then each waited for
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in services:
            service.stop()

    def count(self, table: str, where: str = "true") -> int:
        return int(psql(f"SELECT count(*) FROM {table} WHERE {where}", database=self.database))  # noqa: S608 - our tables

    def effects(self) -> int:
        return self.count(self.tables[2])

    def outbox(self) -> int:
        return self.count(self.tables[1])

    def post_items(self, count: int, clients: int = 8) -> list[int]:
        """Create items through the API from a few keep-alive clients; their statuses."""
        assert self.web is not None
        port, run = self.web.port, uuid.uuid4().hex[:6]

        def client(number: int) -> list[int]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            statuses = []
            try:
                for index in range(number, count, clients):
                    body = json.dumps({"name": f"item {run}-{index}"}).encode()
                    conn.request("POST", ITEMS, body, {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    response.read()
                    statuses.append(response.status)
            finally:
                conn.close()
            return statuses

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            return [status for part in pool.map(client, range(clients)) for status in part]

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for worker in self.workers:
                assert worker.process is not None
                assert worker.process.poll() is None, f"a worker exited\n{worker.log_tail()}"
            time.sleep(0.1)
        tails = "\n".join(worker.log_tail(15) for worker in self.workers)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}: {self.effects()} effects, "
            f"{self.outbox()} outbox rows\n{tails}"
        )

    def settled(self, items: int) -> Callable[[], bool]:
        return lambda: self.effects() >= items and self.outbox() == 0

    def log_events(self, event: str) -> list[dict]:
        return [
            line
            for service in [*self.workers, *self.stopped]
            for line in service.log_events()
            if line.get("event") == event
        ]


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest,
    worker_projects: Callable[[str, str], WorkerProject],
    broker_under_test: BrokerUnderTest,
    postgres_url: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    framework, broker = request.node.callspec.params["combination"]
    project = worker_projects(framework, broker)
    with throwaway_database() as name:
        migrated = run_migrations(project.deployed, database_url(name))
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        pipeline = Pipeline(project, broker_under_test, name, tmp_path)
        try:
            yield pipeline
        finally:
            pipeline.stop()


def processed(worker: Service) -> int:
    return len([event for event in worker.log_events() if event.get("event") == "event processed"])


def assert_each_item_has_exactly_one_effect(pipeline: Pipeline, items: int) -> None:
    item_table, outbox, effects = pipeline.tables
    assert pipeline.count(item_table) == items
    assert pipeline.effects() == items
    distinct_items = f"(SELECT DISTINCT item_id FROM {effects}) AS applied"  # noqa: S608
    assert pipeline.count(distinct_items) == items
    without_effect = f"id NOT IN (SELECT item_id FROM {effects})"  # noqa: S608
    assert pipeline.count(item_table, without_effect) == 0
    assert pipeline.count(outbox) == 0
    applied = [event for event in pipeline.log_events("event processed") if event["applied"]]
    assert len(applied) == items, "an effect was applied twice (or not logged once)"
    for event in applied:
        uuid.UUID(event["event_id"])


def assert_one_partition_per_item(pipeline: Pipeline) -> None:
    """Kafka: an item's events are keyed by its id, so they stay in one partition, in order."""
    broker = pipeline.broker
    assert brokers.kafka_partitions(broker.bootstrap, broker.events) == PARTITIONS
    partitions: dict[str, set[int | None]] = {}
    for record in brokers.kafka_read(broker.bootstrap, broker.events):
        if record.message_id in POISON_KEYS:
            continue
        event = json.loads(record.body)
        assert record.message_id == str(event["item_id"])
        partitions.setdefault(record.message_id, set()).add(record.partition)
    assert partitions
    assert all(len(numbers) == 1 for numbers in partitions.values())
    assert len({number for numbers in partitions.values() for number in numbers}) > 1


@pytest.mark.parametrize("combination", COMBINATIONS, ids="-".join)
def test_worker_pipeline_delivers_every_effect_exactly_once(
    combination: tuple[str, str], pipeline: Pipeline
) -> None:
    pipeline.start_web()
    first, second = pipeline.start_worker(), pipeline.start_worker()
    items = 0

    # 1,000 items through the API, two workers: every effect once, and the outbox drained.
    statuses = pipeline.post_items(1000)
    assert statuses == [201] * 1000
    items += 1000
    pipeline.wait_until(pipeline.settled(items), SETTLE_SECONDS, "1,000 effects")
    assert_each_item_has_exactly_one_effect(pipeline, items)
    processed_by = {worker.port: processed(worker) for worker in (first, second)}
    assert all(processed_by.values()), f"one worker consumed nothing: {processed_by}"

    # Poison: an event whose effect cannot be stored, and bodies that are no event at all. The
    # first is dead-lettered after MAX_ATTEMPTS deliveries, the others at once (they can never
    # decode); meanwhile the other events keep flowing.
    unstorable = {
        "event_id": str(uuid.uuid4()),
        "type": "item.created",
        "item_id": UNSTORABLE_ITEM_ID,
        "name": "poison",
        "occurred_at": "2026-01-01T00:00:00+00:00",
    }
    not_json = f"not JSON {uuid.uuid4()}".encode()
    not_an_event = json.dumps({"order_id": str(uuid.uuid4())}).encode()
    poison = [json.dumps(unstorable).encode(), not_json, not_an_event]
    for key, body in zip(POISON_KEYS, poison, strict=True):
        pipeline.broker.publish(body, key)
    assert pipeline.post_items(100) == [201] * 100
    items += 100
    pipeline.wait_until(pipeline.settled(items), SETTLE_SECONDS, "the events beside the poison")
    pipeline.wait_until(
        lambda: pipeline.broker.dead_letter_count() == len(poison),
        SETTLE_SECONDS,
        f"{len(poison)} dead letters",
    )
    dead = pipeline.broker.dead_letters()
    assert sorted(message.body for message in dead) == sorted(poison)
    failures = [
        event
        for event in pipeline.log_events("event failed")
        if event.get("event_id") == unstorable["event_id"]
    ]
    assert len(failures) == MAX_ATTEMPTS, failures
    assert len(pipeline.log_events("event rejected")) == 2
    reasons = {message.body: message.headers for message in dead}
    if combination[1] == "kafka":
        assert int(reasons[poison[0]]["attempts"]) == MAX_ATTEMPTS
        assert all(reasons[body]["error"] for body in poison)
    else:
        # The queue's own count: dead-lettered at its delivery limit, the others rejected.
        assert reasons[poison[0]]["x-first-death-reason"] == "delivery_limit"
        assert {reasons[body]["x-first-death-reason"] for body in poison[1:]} == {"rejected"}
    assert_each_item_has_exactly_one_effect(pipeline, items)

    # SIGTERM while events flow: the worker finishes or returns what it holds and exits 0 within
    # its budget; a replacement and the other worker process the rest, each effect once.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        posting = pool.submit(pipeline.post_items, 400)
        pipeline.wait_until(lambda: pipeline.effects() >= items + 50, 20, "events to flow")
        processed_before = processed(first)
        pipeline.wait_until(lambda: processed(first) > processed_before, 20, "the worker busy")
        effects_at_sigterm = pipeline.effects()
        sigterm_at = time.monotonic()
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        exit_code = first.process.wait(timeout=GRACEFUL_TIMEOUT + SHUTDOWN_MARGIN + 30)
        stopped_after = time.monotonic() - sigterm_at
        assert posting.result() == [201] * 400
    items += 400
    assert exit_code == 0, first.log_tail()
    assert stopped_after < GRACEFUL_TIMEOUT + SHUTDOWN_MARGIN
    assert effects_at_sigterm < items, "the worker was stopped after all events were processed"
    assert [e for e in first.log_events() if e.get("event") == "worker stopped"]
    pipeline.workers.remove(first)
    pipeline.stopped.append(first)
    pipeline.start_worker()
    pipeline.wait_until(pipeline.settled(items), SETTLE_SECONDS, "the events after the restart")
    assert_each_item_has_exactly_one_effect(pipeline, items)

    # The broker unreachable: readiness fails, liveness does not, the API keeps answering 201
    # (the events wait in the outbox); the broker back, all is delivered without a restart.
    running = {worker.process.pid for worker in pipeline.workers if worker.process}
    pipeline.broker.proxy.cut()
    for worker in pipeline.workers:
        worker.wait_until(lambda w=worker: w.status("/ready") == 503, 15, "/ready to turn 503")
        status, _, body = worker.get("/ready")
        assert status == 503
        assert json.loads(body)["status"] == "unavailable"
        assert json.loads(body)["checks"]["broker"] != "ok"
        status, _, body = worker.get("/health")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert pipeline.post_items(50) == [201] * 50
    items += 50
    time.sleep(1)
    assert pipeline.outbox() == 50, "events left the outbox while the broker was unreachable"
    for worker in pipeline.workers:
        assert worker.status("/health") == 200
    pipeline.broker.proxy.start()
    pipeline.wait_until(pipeline.settled(items), SETTLE_SECONDS, "the events after the outage")
    for worker in pipeline.workers:
        worker.wait_until(lambda w=worker: w.status("/ready") == 200, 15, "/ready again")
    assert {worker.process.pid for worker in pipeline.workers if worker.process} == running
    assert_each_item_has_exactly_one_effect(pipeline, items)

    if combination[1] == "kafka":
        assert_one_partition_per_item(pipeline)
        # Every record was committed after its effect: a restarted group would re-read nothing.
        broker = pipeline.broker
        pipeline.wait_until(
            lambda: brokers.kafka_group_lag(broker.bootstrap, broker.events, broker.group) == 0,
            15,
            "the group to commit every record",
        )
