"""RabbitMQ: a quorum queue of item events, with a delivery limit and a dead-letter queue.

The queue counts deliveries itself (x-delivery-count), so a message that keeps failing is
dead-lettered after CONSUMER_MAX_ATTEMPTS deliveries even across worker restarts, and
`at-least-once` dead-lettering keeps it until the dead-letter queue confirmed it. A message that
cannot be decoded is rejected at once: no redelivery could make it decode.
"""

import asyncio
import logging
from collections.abc import Sequence

from faststream import AckPolicy
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)
from faststream.rabbit.annotations import RabbitMessage

from {{ cookiecutter.package_name }}.worker.config import WorkerConfig
from {{ cookiecutter.package_name }}.worker.consumer import Consumer, Outcome, undecoded
from {{ cookiecutter.package_name }}.worker.events import OutboxRecord
from {{ cookiecutter.package_name }}.worker.relay import Publish

# Seconds the relay waits for the broker to confirm a batch.
PUBLISH_TIMEOUT = 10.0


def events_queue(config: WorkerConfig) -> RabbitQueue:
    return RabbitQueue(
        config.events,
        queue_type=QueueType.QUORUM,
        arguments={
            # Deliveries beyond the first that may fail before the message is dead-lettered.
            "x-delivery-limit": config.max_attempts - 1,
            "x-dead-letter-exchange": config.dead_letter,
            "x-dead-letter-routing-key": config.dead_letter,
            # Dead letters are confirmed by their queue before they leave this one; the strategy
            # requires that publishers are refused, not old messages dropped, when it is full.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def dead_letter_exchange(config: WorkerConfig) -> RabbitExchange:
    return RabbitExchange(config.dead_letter, type=ExchangeType.DIRECT, durable=True)


def dead_letter_queue(config: WorkerConfig) -> RabbitQueue:
    return RabbitQueue(
        config.dead_letter, queue_type=QueueType.QUORUM, routing_key=config.dead_letter
    )


def create_broker(config: WorkerConfig, consumer: Consumer) -> RabbitBroker:
    broker = RabbitBroker(
        config.broker_url,
        graceful_timeout=config.graceful_timeout,
        # Publishes wait for the broker's confirmation, and an unroutable one is an error.
        default_channel=Channel(publisher_confirms=True, on_return_raises=True),
        # Through the root logger's handler (logging_config), not FastStream's own plain text.
        logger=logging.getLogger(__name__),
        # FastStream's own line per message is a debug detail; consumer.py logs each one.
        log_level=logging.DEBUG,
    )

    @broker.subscriber(
        events_queue(config),
        channel=Channel(prefetch_count=config.prefetch),
        ack_policy=AckPolicy.MANUAL,
        decoder=undecoded,
        no_reply=True,
    )
    async def item_events(message: RabbitMessage) -> None:
        delivered_before = int(message.headers.get("x-delivery-count") or 0)
        outcome = (await consumer.handle(message.body, attempt=delivered_before + 1)).outcome
        if outcome is Outcome.DONE:
            await message.ack()
        elif outcome is Outcome.POISON:
            await message.reject(requeue=False)
        else:
            # Requeued: the queue counts the delivery and dead-letters past its limit.
            await message.nack(requeue=True)

    return broker


async def prepare(broker: RabbitBroker, config: WorkerConfig) -> None:
    """Connect, and declare where dead letters go before the queue that sends them there."""
    await broker.connect()
    exchange = await broker.declare_exchange(dead_letter_exchange(config))
    queue = await broker.declare_queue(dead_letter_queue(config))
    await queue.bind(exchange, routing_key=config.dead_letter)


def publisher(broker: RabbitBroker, config: WorkerConfig) -> Publish:
    async def publish(records: Sequence[OutboxRecord]) -> None:
        # Sent together, confirmed one by one: any failure fails the batch, which stays.
        await asyncio.gather(
            *(
                broker.publish(
                    record.payload,
                    queue=config.events,
                    message_id=record.event_id,
                    persist=True,
                    timeout=PUBLISH_TIMEOUT,
                )
                for record in records
            )
        )

    return publish
