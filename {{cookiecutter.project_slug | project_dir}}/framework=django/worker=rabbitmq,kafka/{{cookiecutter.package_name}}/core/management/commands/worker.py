"""`python manage.py worker`: the event worker (worker/), one process per pod.

It consumes the item events, relays the outbox to the broker and answers /health and /ready on
CONSUMER_PORT, until SIGTERM or Ctrl-C; then it lets the messages in flight finish within
CONSUMER_GRACEFUL_TIMEOUT and exits 0.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from {{ cookiecutter.package_name }}.worker.app import run
from {{ cookiecutter.package_name }}.worker.config import WorkerConfig
from {{ cookiecutter.package_name }}.worker.store import Store


def worker_config() -> WorkerConfig:
    if not settings.BROKER_URL:
        raise CommandError("BROKER_URL is not set: in production it has no default")
    return WorkerConfig(
        broker_url=settings.BROKER_URL,
{%- if cookiecutter.worker == "rabbitmq" %}
        events=settings.EVENTS_QUEUE,
{%- else %}
        events=settings.EVENTS_TOPIC,
        consumer_group=settings.KAFKA_CONSUMER_GROUP,
        topic_partitions=settings.KAFKA_TOPIC_PARTITIONS,
{%- endif %}
        port=settings.CONSUMER_PORT,
        prefetch=settings.CONSUMER_PREFETCH,
        max_attempts=settings.CONSUMER_MAX_ATTEMPTS,
        graceful_timeout=settings.CONSUMER_GRACEFUL_TIMEOUT,
        poll_interval=settings.OUTBOX_POLL_INTERVAL,
        batch_size=settings.OUTBOX_BATCH_SIZE,
        ready_timeout=settings.READY_TIMEOUT,
    )


class Command(BaseCommand):
    help = "Consume the item events and relay the outbox, serving /health and /ready."

    def handle(self, *args: Any, **options: Any) -> None:
        run(worker_config(), Store())
