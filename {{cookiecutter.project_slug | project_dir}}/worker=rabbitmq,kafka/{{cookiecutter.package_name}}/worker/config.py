"""What the worker needs to know, built from the project's settings."""

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerConfig:
{%- if cookiecutter.worker == "rabbitmq" %}
    # BROKER_URL: amqp://user:password@host:port/vhost
    broker_url: str
    # EVENTS_QUEUE: the quorum queue of the item events.
    events: str
{%- else %}
    # BROKER_URL: the bootstrap servers, host:port[,host:port...]
    broker_url: str
    # EVENTS_TOPIC: the topic of the item events.
    events: str
    # KAFKA_CONSUMER_GROUP and KAFKA_TOPIC_PARTITIONS (used when the worker creates the topic).
    consumer_group: str
    topic_partitions: int = 6
{%- endif %}
    # CONSUMER_PORT: /health and /ready.
    port: int = 8001
    # CONSUMER_PREFETCH: {% if cookiecutter.worker == "rabbitmq" %}unacknowledged messages delivered ahead{% else %}records per fetch{% endif %}.
    prefetch: int = 10
    # CONSUMER_MAX_ATTEMPTS: deliveries of one message before it is dead-lettered.
    max_attempts: int = 5
    # CONSUMER_GRACEFUL_TIMEOUT: seconds in-flight messages get after SIGTERM.
    graceful_timeout: float = 20.0
    # OUTBOX_POLL_INTERVAL and OUTBOX_BATCH_SIZE: the relay's pause when idle, rows per batch.
    poll_interval: float = 0.5
    batch_size: int = 100
    # READY_TIMEOUT: the time box of each readiness check.
    ready_timeout: float = 1.0

    @property
    def dead_letter(self) -> str:
        return f"{self.events}.dead-letter"
