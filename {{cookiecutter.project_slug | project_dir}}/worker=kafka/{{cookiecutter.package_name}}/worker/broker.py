"""Kafka: a consumer group on the item events topic, committing after each stored effect.

The outbox key (the item id) is the message key, so one item's events share a partition and
are consumed in order. Offsets are committed only after the effect's transaction, so a crash or
a rebalance redelivers instead of losing. A message that fails CONSUMER_MAX_ATTEMPTS times (or
cannot be decoded: no redelivery could make it decode) is copied to the dead-letter topic with
the error and the attempts in its headers, then committed, and the partition moves on.
Attempts are counted by the process holding the partition; a rebalance starts them again.
"""

import asyncio
import logging
from collections.abc import Sequence

import structlog
from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError, for_code
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from {{ cookiecutter.package_name }}.worker.config import WorkerConfig
from {{ cookiecutter.package_name }}.worker.consumer import Consumer, Outcome, describe, undecoded
from {{ cookiecutter.package_name }}.worker.events import OutboxRecord
from {{ cookiecutter.package_name }}.worker.relay import Publish

# Replicas of the topics the worker creates: three where the cluster has them.
MAX_REPLICATION_FACTOR = 3

logger = structlog.get_logger(__name__)


def bootstrap_servers(config: WorkerConfig) -> list[str]:
    return [server.strip() for server in config.broker_url.split(",") if server.strip()]


def create_broker(config: WorkerConfig, consumer: Consumer) -> KafkaBroker:
    broker = KafkaBroker(
        bootstrap_servers(config),
        # Confirmed by every in-sync replica. The producer has one batch per partition in flight,
        # so a retry does not reorder; one that duplicates is absorbed by the consumer.
        acks="all",
        graceful_timeout=config.graceful_timeout,
        # Through the root logger's handler (logging_config), not FastStream's own plain text.
        logger=logging.getLogger(__name__),
        # FastStream's own line per message is a debug detail; consumer.py logs each one.
        log_level=logging.DEBUG,
    )
    # Failed deliveries per (topic, partition, offset) still being retried.
    attempts: dict[tuple[str, int, int], int] = {}

    @broker.subscriber(
        config.events,
        group_id=config.consumer_group,
        ack_policy=AckPolicy.MANUAL,
        decoder=undecoded,
        # A new group starts from the oldest event, not from those published after it joined.
        auto_offset_reset="earliest",
        max_poll_records=config.prefetch,
        no_reply=True,
    )
    async def item_events(message: KafkaMessage) -> None:
        record: ConsumerRecord[bytes, bytes] = message.raw_message
        position = (record.topic, record.partition, record.offset)
        attempt = attempts.get(position, 0) + 1
        result = await consumer.handle(message.body, attempt=attempt)
        if result.outcome is Outcome.RETURN or (
            result.outcome is Outcome.FAILED and attempt < config.max_attempts
        ):
            if result.outcome is Outcome.FAILED:
                attempts[position] = attempt
            # Seeks back: the partition's next poll delivers this record again.
            await message.nack()
            return
        if result.outcome is not Outcome.DONE:
            try:
                await dead_letter(broker, config, record, result.error or "", attempt)
            except KafkaError as exc:
                logger.warning("dead-lettering failed, retrying", error=describe(exc))
                attempts[position] = attempt
                await message.nack()
                return
        attempts.pop(position, None)
        try:
            await message.ack()
        except CommitFailedError as exc:
            # The partition went to another consumer, which gets this record again; its
            # effect is stored already, so it applies nothing twice.
            logger.warning("commit failed after a rebalance", error=describe(exc))

    return broker


async def dead_letter(
    broker: KafkaBroker,
    config: WorkerConfig,
    record: "ConsumerRecord[bytes, bytes]",
    error: str,
    attempts: int,
) -> None:
    headers = {
        "error": error,
        "attempts": str(attempts),
        "source": f"{record.topic}/{record.partition}/{record.offset}",
    }
    await broker.publish(record.value, topic=config.dead_letter, key=record.key, headers=headers)
    logger.warning("event dead-lettered", source=headers["source"], attempts=attempts, error=error)


async def prepare(broker: KafkaBroker, config: WorkerConfig) -> None:
    """Create the topics if they are missing, before the subscriber asks for them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(config))
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        replicas = min(MAX_REPLICATION_FACTOR, len(cluster["brokers"]))
        response = await admin.create_topics(
            [
                NewTopic(config.events, config.topic_partitions, replicas),
                NewTopic(config.dead_letter, config.topic_partitions, replicas),
            ]
        )
    finally:
        await admin.close()
    for topic, code, message in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            raise for_code(code)(f"creating topic {topic}: {message}")


def publisher(broker: KafkaBroker, config: WorkerConfig) -> Publish:
    async def publish(records: Sequence[OutboxRecord]) -> None:
        # Sent in claim order, then confirmed together: each partition keeps the order sent.
        confirmations = [
            await broker.publish(
                record.payload,
                topic=config.events,
                key=record.key.encode(),
                headers={"event_id": record.event_id},
                no_confirm=True,
            )
            for record in records
        ]
        # (The in-memory test broker delivers at once, and hands back nothing to wait for.)
        await asyncio.gather(*(confirmation for confirmation in confirmations if confirmation))

    return publish
