"""The event worker: the outbox the API writes, the relay, and the consumer's effect.

The database is real (TEST_DATABASE_URL); the broker is FastStream's in-memory one, which
routes messages but models neither dead-lettering nor prefetch.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace

import httpx
import pytest
{%- if cookiecutter.worker == "rabbitmq" %}
from faststream.rabbit import TestRabbitBroker as TestBroker
{%- else %}
from faststream.kafka import TestKafkaBroker as TestBroker
{%- endif %}
from sqlalchemy import func, insert, select

from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.models import AuditEntry, Outbox
from {{ cookiecutter.package_name }}.worker import broker as events_broker
from {{ cookiecutter.package_name }}.worker.__main__ import worker_config
from {{ cookiecutter.package_name }}.worker.app import WorkerApp
from {{ cookiecutter.package_name }}.worker.consumer import Consumer, Outcome, Result
from {{ cookiecutter.package_name }}.worker.events import ItemCreated, OutboxRecord
from {{ cookiecutter.package_name }}.worker.relay import Relay
from {{ cookiecutter.package_name }}.worker.store import Store
from tests.support import (
    UNREACHABLE_DATABASE_URL,
    create_database,
    drop_database,
    run_migrate,
    serve,
)


@pytest.fixture(scope="module")
def worker_database() -> Iterator[str]:
    # Its own database: the relay claims every outbox row there is.
    url = create_database()
    try:
        result = run_migrate(url)
        assert result.returncode == 0, result.stdout + result.stderr
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def worker_settings(worker_database: str) -> Settings:
    return Settings(database_url=worker_database, log_format="json")


@pytest.fixture
async def store(worker_settings: Settings) -> AsyncIterator[Store]:
    store = Store(worker_settings)
    async with store.engine.begin() as conn:
        await conn.execute(Outbox.__table__.delete())
    yield store
    await store.close()


async def outbox_count(store: Store) -> int:
    async with store.engine.connect() as conn:
        return (await conn.scalar(select(func.count()).select_from(Outbox))) or 0


async def recorded(store: Store, event_id: uuid.UUID) -> int:
    async with store.engine.connect() as conn:
        statement = select(func.count()).where(AuditEntry.event_id == event_id)
        return (await conn.scalar(statement)) or 0


async def add_to_outbox(store: Store, count: int) -> list[ItemCreated]:
    events = [ItemCreated.for_item(item_id=n + 1, name=f"item {n}") for n in range(count)]
    async with store.engine.begin() as conn:
        await conn.execute(insert(Outbox), [event.outbox_row() for event in events])
    return events


async def test_creating_an_item_commits_its_event_with_it(
    worker_settings: Settings, store: Store
) -> None:
    async with serve(worker_settings) as client:
        response = await client.post("/api/v1/items", json={"name": "Widget"})
    assert response.status_code == 201

    async with store.engine.connect() as conn:
        row = (await conn.execute(select(Outbox.key, Outbox.payload))).one()
    event = ItemCreated.model_validate(row.payload)
    assert event.item_id == response.json()["id"]
    assert (event.name, event.type) == ("Widget", "item.created")
    assert row.key == str(event.item_id)


async def test_an_event_is_recorded_once_however_often_it_is_delivered(store: Store) -> None:
    event = ItemCreated.for_item(item_id=7, name="seven")

    assert await store.record(event) is True
    assert await store.record(event) is False
    assert await recorded(store, event.event_id) == 1


async def test_the_relay_deletes_only_what_the_broker_confirmed(store: Store) -> None:
    events = await add_to_outbox(store, 3)

    async def refuse(records: Sequence[OutboxRecord]) -> None:
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        await store.relay(10, refuse)
    assert await outbox_count(store) == 3

    published: list[OutboxRecord] = []

    async def confirm(records: Sequence[OutboxRecord]) -> None:
        published.extend(records)

    assert await store.relay(10, confirm) == 3
    assert [record.event_id for record in published] == [str(event.event_id) for event in events]
    assert [record.key for record in published] == ["1", "2", "3"]
    assert await outbox_count(store) == 0


async def test_the_relay_keeps_the_outbox_drained_until_stopped(
    worker_settings: Settings, store: Store
) -> None:
    config = replace(worker_config(worker_settings), poll_interval=0.05, batch_size=2)
    published: list[OutboxRecord] = []
    all_published = asyncio.Event()

    async def confirm(records: Sequence[OutboxRecord]) -> None:
        published.extend(records)
        if len(published) == 5:
            all_published.set()

    relay = Relay(store, confirm, config)
    running = asyncio.create_task(relay.run())
    await add_to_outbox(store, 5)
    await asyncio.wait_for(all_published.wait(), timeout=5)
    relay.stopping.set()
    await asyncio.wait_for(running, timeout=5)

    assert await outbox_count(store) == 0


async def test_two_relays_never_claim_the_same_rows(
    worker_settings: Settings, store: Store
) -> None:
    await add_to_outbox(store, 20)
    other = Store(worker_settings)
    published: list[list[str]] = [[], []]

    def slow_publisher(into: list[str]):  # type: ignore[no-untyped-def]
        async def publish(records: Sequence[OutboxRecord]) -> None:
            into.extend(record.event_id for record in records)
            await asyncio.sleep(0.2)

        return publish

    try:
        counts = await asyncio.gather(
            store.relay(10, slow_publisher(published[0])),
            other.relay(10, slow_publisher(published[1])),
        )
    finally:
        await other.close()

    assert counts == [10, 10]
    assert not set(published[0]) & set(published[1])
    assert await outbox_count(store) == 0


async def test_the_consumer_tells_poison_from_failure(store: Store) -> None:
    consumer = Consumer(store)
    too_large = ItemCreated.for_item(item_id=2**40, name="beyond an integer column")
    good = ItemCreated.for_item(item_id=1, name="fine")

    poison = await consumer.handle(b"not json", attempt=1)
    failed = await consumer.handle(too_large.model_dump_json().encode(), attempt=1)
    done = await consumer.handle(good.model_dump_json().encode(), attempt=1)

    assert poison.outcome is Outcome.POISON
    assert failed.outcome is Outcome.FAILED
    assert failed.error is not None
    assert done.outcome is Outcome.DONE
    assert await recorded(store, good.event_id) == 1


async def test_an_unavailable_database_holds_the_message_without_counting_an_attempt() -> None:
    store = Store(Settings(database_url=UNREACHABLE_DATABASE_URL, database_connect_timeout=0.5))
    consumer = Consumer(store)
    event = ItemCreated.for_item(item_id=1, name="waiting")
    try:
        handling = asyncio.create_task(consumer.handle(event.model_dump_json().encode(), 1))
        await asyncio.sleep(0.5)
        assert not handling.done()

        consumer.stopping.set()
        result = await asyncio.wait_for(handling, timeout=5)
    finally:
        await store.close()

    assert result.outcome is Outcome.RETURN


async def test_a_relayed_event_is_consumed_and_stored(
    worker_settings: Settings, store: Store
) -> None:
    config = worker_config(worker_settings)
    app = WorkerApp(config, store)
    event = ItemCreated.for_item(item_id=3, name="through the broker")
    record = OutboxRecord(**{**event.outbox_row(), "event_id": str(event.event_id)})

    async with TestBroker(app.broker):
        await events_broker.publisher(app.broker, config)([record])

    assert await recorded(store, event.event_id) == 1


async def test_a_body_that_is_not_json_reaches_the_consumer_to_be_rejected(
    worker_settings: Settings, store: Store
) -> None:
    config = worker_config(worker_settings)
    app = WorkerApp(config, store)
    outcomes: list[Outcome] = []
    handle = app.consumer.handle

    async def observed(body: bytes, attempt: int) -> Result:
        result = await handle(body, attempt)
        outcomes.append(result.outcome)
        return result

    app.consumer.handle = observed  # type: ignore[method-assign]
    async with TestBroker(app.broker) as broker:
{%- if cookiecutter.worker == "rabbitmq" %}
        await broker.publish(b"not json", queue=config.events, content_type="application/json")
{%- else %}
        await broker.publish(
            b"not json", topic=config.events, headers={"content-type": "application/json"}
        )
{%- endif %}

    assert outcomes == [Outcome.POISON]


async def test_liveness_touches_nothing_and_readiness_checks_the_broker(
    worker_settings: Settings, store: Store
) -> None:
    # Never started: the broker is not connected.
    app = WorkerApp(worker_config(worker_settings), store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        health = await client.get("/health")
        ready = await client.get("/ready")

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"] != "ok"


def test_dead_letters_go_next_to_the_events() -> None:
{%- if cookiecutter.worker == "rabbitmq" %}
    config = worker_config(Settings(events_queue="orders"))
{%- else %}
    config = worker_config(Settings(events_topic="orders"))
{%- endif %}

    assert config.dead_letter == "orders.dead-letter"
