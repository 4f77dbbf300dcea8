"""The event worker: the outbox the API writes, the Django store, the handler and the process.

The store's tests commit (`transaction=True`): the worker works on threads of its own, with
connections of their own, which see only committed rows.
"""

import asyncio
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
{%- if cookiecutter.worker == "rabbitmq" %}
from urllib.parse import urlsplit
{%- endif %}

{% if cookiecutter.worker == "rabbitmq" -%}
import aio_pika
{% endif -%}
import pytest
{%- if cookiecutter.worker == "kafka" %}
from aiokafka.admin import AIOKafkaAdminClient
{%- endif %}
from django.conf import settings
from django.core.management.base import CommandError
from django.db import DataError, OperationalError, connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.test import Client
{%- if cookiecutter.worker == "rabbitmq" %}
from faststream.rabbit import TestRabbitBroker
{%- else %}
from faststream.kafka import TestKafkaBroker
{%- endif %}
from pytest_django import DjangoDbBlocker, Settings

from {{ cookiecutter.package_name }}.core.management.commands.worker import worker_config
from {{ cookiecutter.package_name }}.items.models import AuditEntry, Item, OutboxEvent
from {{ cookiecutter.package_name }}.worker.app import WorkerApp
from {{ cookiecutter.package_name }}.worker.events import ItemCreated, OutboxRecord
from {{ cookiecutter.package_name }}.worker.store import Store
from tests.support import MANAGE, PROJECT_ROOT, Server, app_env, free_port, json_lines

# Port 1 on loopback refuses connections: a broker that is down.
{% if cookiecutter.worker == "rabbitmq" -%}
UNREACHABLE_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/"
{%- else -%}
UNREACHABLE_BROKER_URL = "127.0.0.1:1"
{%- endif %}


def create_item(client: Client, name: str) -> dict[str, Any]:
    response = client.post("/api/v1/items", {"name": name}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def outbox_events(count: int) -> list[ItemCreated]:
    events = [ItemCreated.for_item(n, f"item-{n}") for n in range(1, count + 1)]
    for event in events:
        OutboxEvent.objects.create(**event.outbox_row())
    return events


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store()
    yield store
    asyncio.run(store.close())


@pytest.mark.django_db
def test_creating_an_item_writes_its_event_to_the_outbox(client: Client) -> None:
    item = create_item(client, "Widget")

    (row,) = OutboxEvent.objects.all()
    event = ItemCreated.model_validate(row.payload)
    assert (event.type, event.item_id, event.name) == ("item.created", item["id"], "Widget")
    assert row.event_id == event.event_id
    assert row.key == str(item["id"])


@pytest.mark.django_db
def test_an_item_is_created_only_with_its_event(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(**fields: Any) -> None:
        raise OperationalError("the outbox is unavailable")

    monkeypatch.setattr(OutboxEvent.objects, "create", fail)

    response = client.post("/api/v1/items", {"name": "Lost"}, content_type="application/json")

    assert response.status_code == 503
    assert not Item.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_is_recorded_once(store: Store) -> None:
    event = ItemCreated.for_item(7, "Widget")

    first, again = asyncio.run(store.record(event)), asyncio.run(store.record(event))

    assert (first, again) == (True, False)
    entries = AuditEntry.objects.values_list("event_id", "item_id", "action")
    assert list(entries) == [(event.event_id, 7, "item.created")]


@pytest.mark.django_db(transaction=True)
def test_an_event_recorded_twice_at_once_is_recorded_once(store: Store) -> None:
    # Two deliveries in flight together, as after a crash or a rebalance, on two connections.
    event = ItemCreated.for_item(8, "Widget")

    async def both() -> list[bool]:
        return list(await asyncio.gather(store.record(event), store.record(event)))

    assert sorted(asyncio.run(both())) == [False, True]
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_relay_publishes_in_order_then_deletes_what_it_published(store: Store) -> None:
    events = outbox_events(3)
    published: list[OutboxRecord] = []

    async def publish(records: Sequence[OutboxRecord]) -> None:
        published.extend(records)

    assert asyncio.run(store.relay(2, publish)) == 2

    assert [record.event_id for record in published] == [str(e.event_id) for e in events[:2]]
    assert published[0].key == "1"
    assert published[0].payload == events[0].model_dump(mode="json")
    assert list(OutboxEvent.objects.values_list("event_id", flat=True)) == [events[2].event_id]


@pytest.mark.django_db(transaction=True)
def test_relay_keeps_the_rows_when_the_broker_does_not_confirm(store: Store) -> None:
    outbox_events(3)

    async def publish(records: Sequence[OutboxRecord]) -> None:
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        asyncio.run(store.relay(10, publish))

    assert OutboxEvent.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_two_relays_never_take_the_same_rows(store: Store) -> None:
    events = outbox_events(4)
    other = Store()
    taken: dict[str, list[str]] = {"first": [], "second": []}

    async def scenario() -> None:
        claimed, release = asyncio.Event(), asyncio.Event()

        async def publish_first(records: Sequence[OutboxRecord]) -> None:
            taken["first"] += [record.event_id for record in records]
            claimed.set()
            await release.wait()

        async def publish_second(records: Sequence[OutboxRecord]) -> None:
            taken["second"] += [record.event_id for record in records]

        first = asyncio.create_task(store.relay(2, publish_first))
        await claimed.wait()
        # The first relay holds its rows' locks until it commits.
        await other.relay(10, publish_second)
        release.set()
        await first
        await other.close()

    asyncio.run(scenario())

    ids = [str(event.event_id) for event in events]
    assert taken == {"first": ids[:2], "second": ids[2:]}
    assert not OutboxEvent.objects.exists()


def test_an_unreachable_database_is_transient(
    store: Store, django_db_blocker: DjangoDbBlocker
) -> None:
    unreachable = {**connections["default"].settings_dict, "HOST": "127.0.0.1", "PORT": 1}
    unreachable["OPTIONS"] = {"connect_timeout": 2}
    connection = DatabaseWrapper(unreachable, alias="unreachable")

    with django_db_blocker.unblock(), pytest.raises(OperationalError) as refused:
        connection.ensure_connection()

    assert store.is_transient(refused.value)


@pytest.mark.django_db(transaction=True)
def test_an_event_the_table_refuses_is_not_transient(store: Store) -> None:
    # Beyond the integer column: retrying cannot help, so it counts as a failed attempt.
    event = ItemCreated.for_item(2**31, "Too far")

    with pytest.raises(DataError) as refused:
        asyncio.run(store.record(event))

    assert not store.is_transient(refused.value)
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_delivered_twice_is_applied_once() -> None:
    app = WorkerApp(worker_config(), Store())
    event = ItemCreated.for_item(3, "Widget")

    async def deliver_twice() -> None:
{%- if cookiecutter.worker == "rabbitmq" %}
        async with TestRabbitBroker(app.broker) as broker:
            for _ in range(2):
                await broker.publish(
                    event.model_dump(mode="json"),
                    queue=settings.EVENTS_QUEUE,
                    message_id=str(event.event_id),
                )
{%- else %}
        async with TestKafkaBroker(app.broker) as broker:
            for _ in range(2):
                await broker.publish(
                    event.model_dump(mode="json"), topic=settings.EVENTS_TOPIC, key=b"3"
                )
{%- endif %}
        await app.store.close()

    asyncio.run(deliver_twice())

    assert list(AuditEntry.objects.values_list("event_id", flat=True)) == [event.event_id]


def test_the_worker_refuses_to_start_without_a_broker_url(settings: Settings) -> None:
    settings.BROKER_URL = None

    with pytest.raises(CommandError, match="BROKER_URL is not set"):
        worker_config()


def test_the_worker_reads_its_settings(settings: Settings) -> None:
    settings.CONSUMER_PREFETCH = 3
    settings.CONSUMER_MAX_ATTEMPTS = 2

    config = worker_config()

    assert (config.prefetch, config.max_attempts) == (3, 2)
    assert config.dead_letter == f"{config.events}.dead-letter"


class Worker:
    """`python manage.py worker` as its pod runs it, with JSON logs in a file."""

    def __init__(self, database_url: str, log: Path, **env: str) -> None:
        self.log = log
        self.server = Server(f"http://127.0.0.1:{free_port()}", log)
        port = self.server.url.rsplit(":", 1)[1]
        with log.open("w") as output:
            self.process = subprocess.Popen(  # noqa: S603 - fixed command line
                [*MANAGE, "worker"],
                cwd=PROJECT_ROOT,
                env=app_env(database_url, CONSUMER_PORT=port, **env),
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.server.get("/health").status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{self.log.read_text()}", pytrace=False)
            time.sleep(0.1)

    def stop(self, timeout: float) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the worker did not stop within {timeout}s", pytrace=False)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in json_lines(self.log.read_text()) if line["event"] == name]


@pytest.fixture
def running_workers() -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def test_broker_down_means_unready_not_dead(
    migrated_database: str, tmp_path: Path, running_workers: list[Worker]
) -> None:
    worker = Worker(
        migrated_database,
        tmp_path / "worker.log",
        BROKER_URL=UNREACHABLE_BROKER_URL,
        CONSUMER_GRACEFUL_TIMEOUT="2",
    )
    running_workers.append(worker)
    worker.wait_until_serving()

    ready = worker.server.get("/ready")
    health = worker.server.get("/health")
    status = worker.stop(timeout=15)

    assert ready.status == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"] != "ok"
    assert health.json() == {"status": "ok"}
    assert status == 0
    assert worker.events("broker unavailable")


def broker_address() -> tuple[str, int]:
{%- if cookiecutter.worker == "rabbitmq" %}
    url = urlsplit(settings.BROKER_URL)
    return url.hostname or "127.0.0.1", url.port or 5672
{%- else %}
    host, _, port = settings.BROKER_URL.split(",")[0].rpartition(":")
    return host, int(port)
{%- endif %}


@pytest.fixture
def broker_url() -> str:
    """BROKER_URL, once the broker there accepts connections; the test is skipped otherwise."""
    address = broker_address()
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError:
        pytest.skip(f"no broker at {address[0]}:{address[1]} (BROKER_URL): start it to run this")
    return str(settings.BROKER_URL)


async def delete_events(broker_url: str, events: str) -> None:
{%- if cookiecutter.worker == "rabbitmq" %}
    connection = await aio_pika.connect(broker_url)
    async with connection:
        channel = await connection.channel()
        for queue in (events, f"{events}.dead-letter"):
            await channel.queue_delete(queue)
        await channel.exchange_delete(f"{events}.dead-letter")
{%- else %}
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_url)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics(sorted(existing & {events, f"{events}.dead-letter"}))
    finally:
        await admin.close()
{%- endif %}


@pytest.fixture
def own_events(broker_url: str) -> Iterator[str]:
    """Events of the test's own: runs sharing the broker never take each other's."""
    events = f"test-events-{uuid.uuid4().hex[:12]}"
    yield events
    asyncio.run(delete_events(broker_url, events))


@pytest.mark.django_db(transaction=True)
def test_two_workers_apply_every_event_once(
    client: Client,
    broker_url: str,
    own_events: str,
    migrated_database: str,
    tmp_path: Path,
    running_workers: list[Worker],
) -> None:
    items = [create_item(client, f"item-{n}")["id"] for n in range(40)]
    for n in range(2):
        worker = Worker(
            migrated_database,
            tmp_path / f"worker-{n}.log",
            BROKER_URL=broker_url,
{%- if cookiecutter.worker == "rabbitmq" %}
            EVENTS_QUEUE=own_events,
{%- else %}
            EVENTS_TOPIC=own_events,
            KAFKA_CONSUMER_GROUP=own_events,
            KAFKA_TOPIC_PARTITIONS="2",
{%- endif %}
        )
        running_workers.append(worker)

    deadline = time.monotonic() + 60
    while AuditEntry.objects.count() < len(items) and time.monotonic() < deadline:
        time.sleep(0.2)
    statuses = [worker.stop(timeout=30) for worker in running_workers]

    assert sorted(AuditEntry.objects.values_list("item_id", flat=True)) == sorted(items)
    assert not OutboxEvent.objects.exists()
    assert statuses == [0, 0]
    processed = [e for worker in running_workers for e in worker.events("event processed")]
    assert {e["event_id"] for e in processed} == {
        str(event_id) for event_id in AuditEntry.objects.values_list("event_id", flat=True)
    }
