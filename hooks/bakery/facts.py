"""Facts derived from the answers, computed here once for the templates, the hooks and the tests.

Templates read them with `{%- set facts = project_facts(cookiecutter) %}` (the Jinja extension
registers `project_facts`); the hooks and the tests call `derive` with the answers.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .pins import MODULES_FILE

DATABASE_PORTS = {"postgresql": 5432, "mongodb": 27017}
DATABASE_URL_VARIABLES = {"postgresql": "DATABASE_URL", "mongodb": "MONGODB_URL"}
# Requests one worker runs at once with the app's default settings: Django's WORKER_THREADS;
# FastAPI's database pool (DATABASE_POOL_SIZE, MONGODB_MAX_POOL_SIZE), which the in-memory store
# matches. A pod runs one worker at the Deployment's 1-CPU limit.
REQUESTS_PER_WORKER = {"django": 4, "fastapi": 10}
BROKER_PORTS = {"rabbitmq": 5672, "kafka": 9092}
MANAGEMENT_URL_VARIABLE = "RABBITMQ_MANAGEMENT_URL"
BROKER_SECRET_NAMES = ("BROKER_URL", MANAGEMENT_URL_VARIABLE)
REDIS_PORT = 6379
REDIS_SECRET_NAME = "REDIS_URL"  # noqa: S105 - a variable name
# WebSocket connections a pod holds before autoscaling=keda adds pods: its one worker (at the
# 1-CPU limit) holds several times this many (README, "Real-time channels"), and the headroom
# absorbs the reconnections of a neighbour's rollout.
CONNECTIONS_PER_POD = 2000
# Seconds the web pods' startupProbe gives them before liveness and readiness take over: imports
# and worker boot; with inference, also each worker's model load (checksum, session) and warm-up
# inference, which happen before it answers at all.
STARTUP_SECONDS = 60
INFERENCE_STARTUP_SECONDS = 120
# The example model the project ships, where it lands in the project.
MODEL_FILE = "models/iris.onnx"
MODEL_SOURCE = (
    Path(__file__).resolve().parents[2]
    / "{{cookiecutter.project_slug | project_dir}}"
    / "framework=fastapi"
    / "inference=yes"
    / MODEL_FILE
)
# The app's per-worker inference defaults (core/settings.py), which config.env states.
INFERENCE_CONCURRENCY = 1
INFERENCE_QUEUE_SIZE = 16
INFERENCE_MAX_BATCH_SIZE = 64
# Requests waiting for the model per pod before autoscaling=keda adds pods: a quarter of what its
# one worker (at the 1-CPU limit) lets wait, so new pods start well before a queue fills (503).
QUEUED_PER_POD = 4


@dataclass(frozen=True)
class Platform:
    """Where a project's locks install, as uv's --python-platform and environment markers see it."""

    target: str
    system: str
    machine: str
    # The oldest macOS release its wheels may require (uv's MACOSX_DEPLOYMENT_TARGET).
    macos: str | None = None


LINUX_PLATFORMS = (
    Platform("x86_64-manylinux_2_28", "Linux", "x86_64"),
    Platform("aarch64-manylinux_2_28", "Linux", "aarch64"),
)
LOCK_PLATFORMS = (
    *LINUX_PLATFORMS,
    Platform("x86_64-apple-darwin", "Darwin", "x86_64", macos="13.0"),
    Platform("aarch64-apple-darwin", "Darwin", "arm64", macos="13.0"),
)
# ONNX Runtime publishes no Intel macOS wheels since 1.24; its Apple silicon ones need macOS 14.
INFERENCE_LOCK_PLATFORMS = (
    *LINUX_PLATFORMS,
    Platform("aarch64-apple-darwin", "Darwin", "arm64", macos="14.0"),
)


@dataclass(frozen=True)
class DevDatabase:
    """The throw-away database server the dev overlay runs next to the app."""

    # Its Deployment, Service, NetworkPolicy and `app.kubernetes.io/name` label.
    name: str
    image: str
    port: int
    # The image's own numeric user, which owns the data directory it creates.
    user_id: int
    # The account the server creates on first start, and the app's URL uses.
    username: str
    url_template: str
    # The key of the overlay's secrets.env that holds its password.
    password_key: str = "DATABASE_PASSWORD"  # noqa: S105 - a variable name

    def url(self, password: str) -> str:
        """What the app's URL variable holds to reach it, in the same namespace."""
        return self.url_template.format(password=password)


def dev_database(database: str, package_name: str) -> DevDatabase | None:
    if database not in DATABASE_PORTS:
        return None
    port = DATABASE_PORTS[database]
    if database == "postgresql":
        return DevDatabase(
            name="postgresql",
            image="postgres:17",
            port=port,
            user_id=999,
            username=package_name,
            url_template=f"postgresql://{package_name}:{{password}}@postgresql:{port}/{package_name}",
        )
    return DevDatabase(
        name="mongodb",
        image="mongo:8.0",
        port=port,
        user_id=999,
        username=package_name,
        # The account lives in the admin database, as the image creates it.
        url_template=f"mongodb://{package_name}:{{password}}@mongodb:{port}/?authSource=admin",
    )


@dataclass(frozen=True)
class DevBroker:
    """A throw-away message broker the dev overlay runs: the worker's, or the channels' Redis."""

    # Its Deployment, Service, NetworkPolicy and `app.kubernetes.io/name` label.
    name: str
    image: str
    port: int
    # The image's own numeric user.
    user_id: int
    # What BROKER_URL holds to reach it, in the same namespace.
    url_template: str
    # The key of the overlay's secrets.env that holds its password; None when it has none.
    password_key: str | None = None
    # What RABBITMQ_MANAGEMENT_URL holds (KEDA's queue-length trigger); None without the API.
    management_url_template: str | None = None

    def url(self, password: str) -> str:
        return self.url_template.format(password=password)

    def management_url(self, password: str) -> str | None:
        if self.management_url_template is None:
            return None
        return self.management_url_template.format(password=password)


@dataclass(frozen=True)
class Worker:
    """The second Deployment of the image: the consumer of the service's item events."""

    broker: str
    # Its Deployment, PDB, NetworkPolicy and autoscaler.
    name: str
    command: tuple[str, ...]
    # CONSUMER_PORT: its /health and /ready.
    port: int
    broker_port: int
    # CONSUMER_GRACEFUL_TIMEOUT: seconds in-flight messages get after SIGTERM; the pod's
    # terminationGracePeriodSeconds is above it.
    graceful_timeout: int
    termination_grace_period: int
    # The RabbitMQ queue or Kafka topic of the item events, and where failed ones end.
    events: str
    dead_letter: str
    # The Kafka consumer group; None for RabbitMQ.
    consumer_group: str | None
    dev_broker: DevBroker


def worker_facts(answers: Mapping[str, object]) -> Worker | None:
    broker = str(answers.get("worker", "none"))
    if broker not in BROKER_PORTS:
        return None
    slug, package = str(answers.get("project_slug", "")), str(answers.get("package_name", ""))
    command = (
        ("python", "manage.py", "worker")
        if answers["framework"] == "django"
        else ("python", "-m", f"{package}.worker")
    )
    port = BROKER_PORTS[broker]
    # KEDA's operator resolves the broker's address from its own namespace: the full name.
    dev_service_domain = f"{overlay_namespaces(slug)['dev']}.svc"
    if broker == "rabbitmq":
        dev_broker = DevBroker(
            name="rabbitmq",
            image="rabbitmq:4-management",
            port=port,
            user_id=999,
            url_template=f"amqp://{package}:{{password}}@rabbitmq:{port}/",
            password_key="BROKER_PASSWORD",  # noqa: S106 - a variable name
            # The default virtual host, "/", URL-encoded as KEDA's trigger expects it.
            management_url_template=(
                f"http://{package}:{{password}}@rabbitmq.{dev_service_domain}:15672/%2F"
            ),
        )
    else:
        dev_broker = DevBroker(
            name="kafka",
            image="apache/kafka:4.1.0",
            port=port,
            user_id=1000,
            url_template=f"kafka.{dev_service_domain}:{port}",
        )
    return Worker(
        broker=broker,
        name=f"{slug}-worker",
        command=command,
        port=8001,
        broker_port=port,
        graceful_timeout=20,
        termination_grace_period=30,
        events="item-events",
        dead_letter="item-events.dead-letter",
        consumer_group=f"{slug}-worker" if broker == "kafka" else None,
        dev_broker=dev_broker,
    )


@dataclass(frozen=True)
class Channels:
    """The WebSocket channels of the web pods, fanned out between pods through Redis."""

    redis_port: int
    # The connections per pod autoscaling=keda aims at.
    connections_per_pod: int
    dev_redis: DevBroker


def channels_facts(answers: Mapping[str, object]) -> Channels | None:
    if answers.get("websockets") != "yes":
        return None
    return Channels(
        redis_port=REDIS_PORT,
        connections_per_pod=CONNECTIONS_PER_POD,
        dev_redis=DevBroker(
            name="redis",
            image="redis:8.2",
            port=REDIS_PORT,
            user_id=999,
            url_template=f"redis://default:{{password}}@redis:{REDIS_PORT}/0",
            password_key="REDIS_PASSWORD",  # noqa: S106 - a variable name
        ),
    )


@dataclass(frozen=True)
class Inference:
    """The model the web pods serve, and the numbers their manifests are sized by."""

    # The startupProbe budget (periodSeconds x failureThreshold) the model's load and warm-up get.
    startup_seconds: int
    # INFERENCE_CONCURRENCY, INFERENCE_QUEUE_SIZE, INFERENCE_MAX_BATCH_SIZE as config.env sets them.
    concurrency: int
    queue_size: int
    max_batch_size: int
    # The requests waiting for an inference slot per pod autoscaling=keda aims at
    # (inference_queue_depth).
    queued_per_pod: int
    # The shipped model (MODEL_PATH's default) and its SHA-256 (MODEL_SHA256's).
    model_file: str
    model_sha256: str


def inference_facts(answers: Mapping[str, object]) -> Inference | None:
    if answers.get("inference") != "yes":
        return None
    return Inference(
        startup_seconds=INFERENCE_STARTUP_SECONDS,
        concurrency=INFERENCE_CONCURRENCY,
        queue_size=INFERENCE_QUEUE_SIZE,
        max_batch_size=INFERENCE_MAX_BATCH_SIZE,
        queued_per_pod=QUEUED_PER_POD,
        model_file=MODEL_FILE,
        model_sha256=model_sha256(),
    )


@functools.cache
def model_sha256() -> str:
    return hashlib.sha256(MODEL_SOURCE.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Facts:
    # Variables the Kubernetes Secret holds.
    secret_names: tuple[str, ...]
    # The port the service reaches its database on; None without a database.
    database_port: int | None
    # What the migration initContainer (and `make migrate`) runs; empty without a database.
    migrate_command: tuple[str, ...]
    # {overlay: the Namespace it declares}, as k8s/overlays/<overlay>/namespace.yaml names it.
    namespaces: Mapping[str, str]
    # Requests in flight per pod that the autoscaler aims at (autoscaling=keda's threshold);
    # None for a framework REQUESTS_PER_WORKER does not know yet.
    requests_per_pod: int | None
    # The database server the dev overlay brings; None without a database.
    dev_database: DevDatabase | None = None
    # The event consumer's Deployment; None with worker=none.
    worker: Worker | None = None
    # The WebSocket channels; None with websockets=no.
    channels: Channels | None = None
    # The model the web pods serve; None with inference=no.
    inference: Inference | None = None
    # Where the lock files install (the image's Linux, developers' machines).
    lock_platforms: tuple[Platform, ...] = LOCK_PLATFORMS

    @property
    def startup_seconds(self) -> int:
        """The web pods' startupProbe budget: what they may take before they first answer."""
        return self.inference.startup_seconds if self.inference else STARTUP_SECONDS

    @property
    def has_secrets(self) -> bool:
        return bool(self.secret_names)

    @property
    def web_secret_names(self) -> tuple[str, ...]:
        """What the web pods read from the Secret: the API never talks to the broker."""
        return tuple(name for name in self.secret_names if name not in BROKER_SECRET_NAMES)

    @property
    def worker_secret_names(self) -> tuple[str, ...]:
        """What the worker pods read from the Secret: the management URL is KEDA's alone, and
        Redis is the channels' alone."""
        return tuple(
            name
            for name in self.secret_names
            if name not in (MANAGEMENT_URL_VARIABLE, REDIS_SECRET_NAME)
        )

    @property
    def has_database(self) -> bool:
        return self.database_port is not None


def overlay_namespaces(slug: str) -> dict[str, str]:
    return {"prod": slug, "dev": f"{slug}-dev"}


def derive(answers: Mapping[str, object]) -> Facts:
    framework, database = answers["framework"], str(answers["database"])
    secret_names = [DATABASE_URL_VARIABLES[database]] if database in DATABASE_URL_VARIABLES else []
    if framework == "django":
        secret_names.append("SECRET_KEY")
    worker = worker_facts(answers)
    if worker is not None:
        secret_names.append("BROKER_URL")
        if worker.broker == "rabbitmq" and answers.get("autoscaling") == "keda":
            # KEDA counts unacknowledged messages through the management API only.
            secret_names.append(MANAGEMENT_URL_VARIABLE)
    channels = channels_facts(answers)
    if channels is not None:
        secret_names.append(REDIS_SECRET_NAME)
    inference = inference_facts(answers)
    migrate_command: tuple[str, ...] = ()
    if database in DATABASE_PORTS:
        migrate_command = (
            ("python", "manage.py", "migrate_locked")
            if framework == "django"
            else ("python", "-m", f"{answers['package_name']}.migrate")
        )
    return Facts(
        secret_names=tuple(secret_names),
        database_port=DATABASE_PORTS.get(database),
        migrate_command=migrate_command,
        namespaces=overlay_namespaces(str(answers.get("project_slug", ""))),
        requests_per_pod=REQUESTS_PER_WORKER.get(str(framework)),
        dev_database=dev_database(database, str(answers.get("package_name", ""))),
        worker=worker,
        channels=channels,
        inference=inference,
        lock_platforms=INFERENCE_LOCK_PLATFORMS if inference else LOCK_PLATFORMS,
    )


def conditions(answers: Mapping[str, object]) -> dict[str, str]:
    """What a condition folder (`name=value`, see layout.py) can name: the answers, and facts
    that several answers decide."""
    facts = derive(answers)
    return {
        **{name: str(value) for name, value in answers.items() if not name.startswith("_")},
        "secrets": "yes" if facts.has_secrets else "no",
    }


@functools.cache
def shadowed_modules() -> frozenset[str]:
    """Every top-level module some shipped lock installs, on any platform its markers name.

    A project package of the same name would be imported in place of the dependency (the
    project's root comes first on sys.path), so no bake may choose one, whichever its lock set.
    `tools/regenerate_pins.py` records them from the pinned wheels.
    """
    recorded = json.loads(MODULES_FILE.read_text(encoding="utf-8"))["modules"]
    return frozenset(module for modules in recorded.values() for module in modules)
