"""The worker process: the broker's consumer, the outbox relay and the probes' HTTP server.

The probes are served from the start, before the broker connects: the connection is retried
in the background, so a broker that is down makes the worker unready, never crash-looping.
/health touches nothing (a restart cannot fix a broker or a database); /ready checks both.
"""

import asyncio
import json
import signal
import sys
from types import FrameType
from typing import Any, Protocol

import structlog
import uvicorn

from {{ cookiecutter.package_name }}.worker import broker as events_broker
from {{ cookiecutter.package_name }}.worker.config import WorkerConfig
from {{ cookiecutter.package_name }}.worker.consumer import Consumer, EffectStore, describe
from {{ cookiecutter.package_name }}.worker.relay import OutboxStore, Relay

logger = structlog.get_logger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any
CONNECT_TIMEOUT = 10.0
# Seconds of the shutdown the relay gets, before the consumer's CONSUMER_GRACEFUL_TIMEOUT.
RELAY_STOP_TIMEOUT = 5.0
MAX_CONNECT_DELAY = 10.0


class Store(EffectStore, OutboxStore, Protocol):
    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class WorkerApp:
    """An ASGI app: its lifespan runs the consumer and the relay, its routes are the probes."""

    def __init__(self, config: WorkerConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.consumer = Consumer(store)
        self.broker = events_broker.create_broker(config, self.consumer)
        self.relay = Relay(store, events_broker.publisher(self.broker, config), config)
        self.stopping = False
        self.connected = False
        self.tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            status, body = await self.route(scope["path"])
            await send_json(send, status, body, head=scope["method"] == "HEAD")

    async def route(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/health":
            return 200, {"status": "ok"}
        if path == "/ready":
            return await self.ready()
        return 404, {"detail": "Not Found"}

    async def ready(self) -> tuple[int, dict[str, Any]]:
        if self.stopping:
            return 503, {"status": "unavailable", "checks": {"shutdown": "draining"}}
        broker, database = await asyncio.gather(self.check_broker(), self.check_database())
        checks = {"broker": broker, "database": database}
        if broker == database == "ok":
            return 200, {"status": "ready", "checks": checks}
        logger.warning("readiness check failed", checks=checks)
        return 503, {"status": "unavailable", "checks": checks}

    async def check_broker(self) -> str:
        if await self.broker.ping(timeout=self.config.ready_timeout):
            return "ok"
        return f"no answer within {self.config.ready_timeout}s"

    async def check_database(self) -> str:
        try:
            async with asyncio.timeout(self.config.ready_timeout):
                await self.store.ping()
        except TimeoutError:
            return f"no answer within {self.config.ready_timeout}s"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and says why
            return describe(exc)
        return "ok"

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await receive()
        self.tasks.append(asyncio.create_task(self.connect_and_relay()))
        logger.info("worker started", port=self.config.port, events=self.config.events)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await self.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    async def connect_and_relay(self) -> None:
        delay = 0.5
        while True:
            try:
                # A broker that accepts connections and never answers is retried too.
{%- if cookiecutter.worker == "kafka" %} (Starting
                # the consumer is not timed: joining a Kafka group takes a rebalance.)
{%- endif %}
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await events_broker.prepare(self.broker, self.config)
                await self.broker.start()
            except Exception as exc:  # noqa: BLE001 - retried until the broker answers
                logger.warning("broker unavailable", error=describe(exc), retry_in=delay)
                await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_CONNECT_DELAY)
            else:
                break
        self.connected = True
        logger.info("broker connected")
        await self.relay.run()

    async def shutdown(self) -> None:
        self.stopping = True
        # Messages waiting for the database go back to the broker instead of holding shutdown.
        self.consumer.stopping.set()
        self.relay.stopping.set()
        if self.connected:
            # The relay finishes the batch it holds, or is cut short and rolls it back: the rows
            # stay for the next worker. Messages in flight go on meanwhile.
            await asyncio.wait(self.tasks, timeout=RELAY_STOP_TIMEOUT)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # Stops consuming, then waits up to the graceful timeout for the messages in flight;
        # the broker redelivers those left unacknowledged.
        await self.broker.stop()
        await self.store.close()
        logger.info("worker stopped")


async def send_json(send: Send, status: int, body: dict[str, Any], *, head: bool) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else content})


class WorkerServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A stop request is how a worker ends normally: exit 0 once drained, instead of uvicorn
        # re-raising the signal after shutdown.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def run(config: WorkerConfig, store: Store) -> None:
    """Serve until SIGTERM or SIGINT; logging is configured by the caller."""
    server = WorkerServer(
        uvicorn.Config(
            WorkerApp(config, store),
            host="0.0.0.0",  # noqa: S104 - the pod's probes reach it from outside the container
            port=config.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            # Probes are short: the graceful budget belongs to the messages in flight.
            timeout_graceful_shutdown=1,
        )
    )
    server.run()
    if not server.started:
        sys.exit(1)
