"""The rendered event worker side by side with a bare consumer loop of the same library.

Per framework and broker: the bake with `worker=<broker>` on PostgreSQL, two worker processes
started with the worker Deployment's command and environment, against a bare FastStream
subscriber (two processes too) in the same venv that does only the effect's INSERT ... ON CONFLICT
DO NOTHING: no relay, no retries, no dead-lettering, no health server. Both consume the same
number of item.created events from a queue or topic of their own; messages per second are
counted from the effects' `recorded_at` (first to last), so process start-up is left out.

RabbitMQ: the consumers declare their queue, consume a few warm-up events and stop; the events
are published while nobody consumes, then two fresh processes drain the queue. Kafka (a tansu
broker on loopback): the topic exists beforehand; the consumers join their group and consume
the warm-up events, then the events are produced at once (far faster than either consumes).
Every process is ended by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.serving import bake_as_the_image_does, run
from hooks.bakery.facts import Worker, derive
from testkit import brokers
from testkit.services import (
    database_url,
    free_port,
    in_venv,
    migrate_command,
    pod_environment,
    psql,
    throwaway_database,
)
from testkit.template import defaults

# The rendered worker's messages/s over the bare loop's, at least.
TARGET_RATIO = 0.8
PROCESSES = 2
WARM_UP_EVENTS = 20
PREFETCH = 10
PARTITIONS = 6
CLIENT_LIBRARIES = {"rabbitmq": "aio-pika", "kafka": "aiokafka"}
EFFECTS_TABLES = {"fastapi": "audit_entries", "django": "items_auditentry"}
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}

# What a user would write with FastStream alone: one subscriber, the effect's INSERT through the
# framework's own driver (asyncpg for FastAPI's lock, psycopg for Django's), FastStream's
# defaults otherwise (its log line per message among them). Kafka commits after the handler,
# as the worker does: FastStream's default commits first, which could lose an event.
BARE_CONSUMER = """
    import asyncio
    import os
    import uuid
    from datetime import datetime
    from typing import Literal

    from faststream import AckPolicy, FastStream
    from pydantic import BaseModel, ConfigDict

    BROKER, EVENTS = os.environ["BARE_BROKER"], os.environ["EVENTS"]
    DATABASE_URL, TABLE = os.environ["DATABASE_URL"], os.environ["EFFECTS_TABLE"]
    PREFETCH = int(os.environ["CONSUMER_PREFETCH"])
    INSERT = (
        f"INSERT INTO {TABLE} (event_id, item_id, action, recorded_at)"
        " VALUES ({}, {}, {}, now()) ON CONFLICT DO NOTHING"
    )


    class ItemCreated(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")

        event_id: uuid.UUID
        type: Literal["item.created"]
        item_id: int
        name: str
        occurred_at: datetime


    if BROKER == "rabbitmq":
        from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitQueue

        broker = RabbitBroker(os.environ["BROKER_URL"])
        subscriber = broker.subscriber(
            RabbitQueue(EVENTS, queue_type=QueueType.QUORUM),
            channel=Channel(prefetch_count=PREFETCH),
        )
    else:
        from faststream.kafka import KafkaBroker

        broker = KafkaBroker(os.environ["BROKER_URL"])
        subscriber = broker.subscriber(
            EVENTS,
            group_id=os.environ["GROUP"],
            auto_offset_reset="earliest",
            max_poll_records=PREFETCH,
            ack_policy=AckPolicy.ACK,
        )

    try:
        import asyncpg

        pool = None

        async def connect() -> None:
            global pool
            pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=10)

        async def insert(event: ItemCreated) -> None:
            values = (event.event_id, event.item_id, event.type)
            await pool.execute(INSERT.format("$1", "$2", "$3"), *values)

    except ImportError:
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(DATABASE_URL, min_size=1, max_size=10, open=False)

        async def connect() -> None:
            await pool.open()

        async def insert(event: ItemCreated) -> None:
            async with pool.connection() as connection:
                await connection.execute(
                    INSERT.format("%s", "%s", "%s"), (event.event_id, event.item_id, event.type)
                )


    @subscriber
    async def handle(event: ItemCreated) -> None:
        await insert(event)


    app = FastStream(broker, on_startup=[connect])

    if __name__ == "__main__":
        asyncio.run(app.run())
"""


@dataclass(frozen=True)
class WorkerDeployment:
    framework: str
    broker: str
    project: Path
    venv: Path
    bare_dir: Path
    worker: Worker


def deploy(framework: str, broker: str, workdir: Path) -> WorkerDeployment:
    """Bake, install the runtime lock and compile bytecode, as the image does."""
    answers = {"framework": framework, "database": "postgresql", "worker": broker}
    project, venv, bare_dir = bake_as_the_image_does(
        workdir, f"{framework}-{broker}", answers, {"consumer.py": BARE_CONSUMER}
    )
    slug = project.name
    facts = derive(
        {**defaults(), **answers, "project_slug": slug, "package_name": slug.replace("-", "_")}
    )
    if facts.worker is None:
        raise RuntimeError(f"no worker facts for {answers}")
    return WorkerDeployment(framework, broker, project, venv, bare_dir, facts.worker)


@dataclass
class Contender:
    """The rendered worker or the bare loop: how to start one of its processes."""

    name: str
    venv: Path
    command: list[str]
    cwd: Path
    # (queue or topic, Kafka group) -> the process environment
    env: Callable[[str, str], dict[str, str]]


def contenders(deployment: WorkerDeployment, database: str, bootstrap: str) -> list[Contender]:
    venv, framework = deployment.venv, deployment.framework
    url = database_url(database)
    broker_url = bootstrap if deployment.broker == "kafka" else brokers.RABBITMQ_URL
    base = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", **IMAGE_ENV, "DATABASE_URL": url}
    base["BROKER_URL"] = broker_url

    def rendered_env(events: str, group: str) -> dict[str, str]:
        env = {**base, **pod_environment(framework), "CONSUMER_PREFETCH": str(PREFETCH)}
        if deployment.broker == "rabbitmq":
            return env | {"EVENTS_QUEUE": events}
        return env | {
            "EVENTS_TOPIC": events,
            "KAFKA_CONSUMER_GROUP": group,
            "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        }

    def bare_env(events: str, group: str) -> dict[str, str]:
        return {
            **base,
            "BARE_BROKER": deployment.broker,
            "EVENTS": events,
            "GROUP": group,
            "EFFECTS_TABLE": EFFECTS_TABLES[framework],
            "CONSUMER_PREFETCH": str(PREFETCH),
        }

    return [
        Contender(
            "rendered", venv, list(deployment.worker.command), deployment.project, rendered_env
        ),
        Contender("bare", venv, ["python", "consumer.py"], deployment.bare_dir, bare_env),
    ]


def events(first_item: int, count: int) -> list[tuple[str, bytes]]:
    """(key, body) of item.created events for consecutive item ids."""
    now = datetime.now(UTC).isoformat()
    return [
        (
            str(item_id),
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "type": "item.created",
                    "item_id": item_id,
                    "name": f"item {item_id}",
                    "occurred_at": now,
                }
            ).encode(),
        )
        for item_id in range(first_item, first_item + count)
    ]


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def processes(
    contender: Contender, events_name: str, group: str, logs: Path
) -> Iterator[list[Running]]:
    started = []
    for number in range(PROCESSES):
        log_path = logs / f"{contender.name}-{events_name}-{number}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            in_venv(contender.venv, contender.command),
            cwd=contender.cwd,
            # CONSUMER_PORT: each rendered process serves its own /health and /ready.
            env={**contender.env(events_name, group), "CONSUMER_PORT": str(free_port())},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((process, log))
    try:
        yield [Running(process, Path(log.name)) for process, log in started]
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, log in started:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, running: list[Running]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for consumer in running:
            if consumer.process.poll() is not None:
                raise RuntimeError(
                    f"a consumer exited ({consumer.process.returncode}) waiting for {what}:\n"
                    + consumer.log_tail()
                )
        time.sleep(0.2)
    tails = "\n".join(consumer.log_tail(10) for consumer in running)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}:\n{tails}")


def publish(broker: str, bootstrap: str, name: str, batch: list[tuple[str, bytes]]) -> None:
    if broker == "rabbitmq":
        bodies = [body for _, body in batch]
        ids = [json.loads(body)["event_id"] for body in bodies]
        brokers.rabbit_publish(name, bodies, message_ids=ids)
    else:
        brokers.kafka_produce(bootstrap, name, [(key.encode(), body) for key, body in batch])


def consume_once(
    deployment: WorkerDeployment,
    contender: Contender,
    database: str,
    bootstrap: str,
    messages: int,
    logs: Path,
) -> dict[str, Any]:
    """Messages/s of PROCESSES consumers of one contender draining `messages` events."""
    table = EFFECTS_TABLES[deployment.framework]
    psql(f"TRUNCATE {table}", database=database)
    name, broker = brokers.unique_name(f"bench-{contender.name}"), deployment.broker
    group = f"{name}-group"

    def effects() -> int:
        return int(psql(f"SELECT count(*) FROM {table}", database=database))  # noqa: S608

    try:
        if broker == "kafka":
            brokers.kafka_create_topic(bootstrap, name, PARTITIONS)
        with processes(contender, name, group, logs) as running:
            if broker == "rabbitmq":
                wait_for(lambda: brokers.rabbit_queue_depth(name) is not None, 60, name, running)
            publish(broker, bootstrap, name, events(1, WARM_UP_EVENTS))
            wait_for(lambda: effects() >= WARM_UP_EVENTS, 60, "the warm-up events", running)
            if broker == "kafka":
                publish(broker, bootstrap, name, events(WARM_UP_EVENTS + 1, messages))
                wait_for(lambda: effects() >= WARM_UP_EVENTS + messages, 300, name, running)
        if broker == "rabbitmq":
            publish(broker, bootstrap, name, events(WARM_UP_EVENTS + 1, messages))
            with processes(contender, name, group, logs) as running:
                wait_for(lambda: effects() >= WARM_UP_EVENTS + messages, 300, name, running)
    finally:
        if broker == "rabbitmq":
            queues = [name, f"{name}.dead-letter"]
            brokers.rabbit_delete(queues=queues, exchanges=queues)
    span_sql = (
        "SELECT count(*), extract(epoch FROM max(recorded_at) - min(recorded_at))"  # noqa: S608
        f" FROM {table} WHERE item_id > {WARM_UP_EVENTS}"
    )
    span = psql(span_sql, database=database)
    count, seconds = span.split("|")
    return {
        "messages": int(count),
        "seconds": float(seconds),
        "messages_per_s": (int(count) - 1) / float(seconds),
    }


def compare(
    deployment: WorkerDeployment,
    rounds: int,
    messages: int,
    workdir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Alternating rounds of the rendered worker and the bare loop, on one database."""
    logs = workdir / f"{deployment.framework}-{deployment.broker}-logs"
    logs.mkdir(exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        bootstrap = ""
        if deployment.broker == "kafka":
            tansu = stack.enter_context(brokers.running_tansu(logs / "tansu.log"))
            bootstrap = tansu.bootstrap
        database = stack.enter_context(throwaway_database())
        venv = deployment.venv
        run(
            in_venv(venv, migrate_command(deployment.project)),
            cwd=deployment.project,
            env={
                "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
                **pod_environment(deployment.framework),
                "DATABASE_URL": database_url(database),
            },
        )
        pair = contenders(deployment, database, bootstrap)
        load_average = []
        for number in range(rounds):
            load_average.append(os.getloadavg()[0])
            for contender in pair if number % 2 == 0 else pair[::-1]:
                result = consume_once(deployment, contender, database, bootstrap, messages, logs)
                say(
                    f"  {contender.name}: {result['messages_per_s']:.0f} messages/s"
                    f" ({result['messages']} in {result['seconds']:.2f} s)"
                )
                runs.setdefault(contender.name, []).append(result)
    return {
        "processes": PROCESSES,
        "prefetch": PREFETCH,
        "messages": messages,
        "rounds": rounds,
        "load_average_per_round": load_average,
        "rendered": {"command": " ".join(deployment.worker.command), "runs": runs["rendered"]},
        "bare": {
            "description": "a FastStream subscriber doing only the INSERT ... ON CONFLICT",
            "command": "python consumer.py",
            "runs": runs["bare"],
        },
    }


def throughput_ratio(result: dict[str, Any]) -> float:
    """Median rendered messages/s over the median bare messages/s."""

    def rates(contender: str) -> list[float]:
        return [run["messages_per_s"] for run in result[contender]["runs"]]

    return statistics.median(rates("rendered")) / statistics.median(rates("bare"))
