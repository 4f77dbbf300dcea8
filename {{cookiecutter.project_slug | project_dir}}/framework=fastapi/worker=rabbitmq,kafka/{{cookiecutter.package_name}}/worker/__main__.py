"""`python -m {{ cookiecutter.package_name }}.worker`: the event worker, one process per pod."""

from {{ cookiecutter.package_name }}.core.logging_config import configure_logging
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings
from {{ cookiecutter.package_name }}.worker.app import run
from {{ cookiecutter.package_name }}.worker.config import WorkerConfig
from {{ cookiecutter.package_name }}.worker.store import Store


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        broker_url=settings.broker_url,
{%- if cookiecutter.worker == "rabbitmq" %}
        events=settings.events_queue,
{%- else %}
        events=settings.events_topic,
        consumer_group=settings.kafka_consumer_group,
        topic_partitions=settings.kafka_topic_partitions,
{%- endif %}
        port=settings.consumer_port,
        prefetch=settings.consumer_prefetch,
        max_attempts=settings.consumer_max_attempts,
        graceful_timeout=settings.consumer_graceful_timeout,
        poll_interval=settings.outbox_poll_interval,
        batch_size=settings.outbox_batch_size,
        ready_timeout=settings.ready_timeout,
    )


def main() -> None:
    settings = get_settings()
    configure_logging(settings)
    run(worker_config(settings), Store(settings))


if __name__ == "__main__":
    main()
