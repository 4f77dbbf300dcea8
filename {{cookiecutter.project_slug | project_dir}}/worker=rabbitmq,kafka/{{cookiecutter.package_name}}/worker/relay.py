"""The outbox relay: moves the events the API committed to the broker.

Each batch is claimed with FOR UPDATE SKIP LOCKED, so workers never take the same rows, and
deleted in the transaction that claimed it, after the broker confirmed every message. A failed
publish rolls the batch back for a later try; a crash between the confirmation and the commit
publishes it again, which the consumer's event-id key absorbs.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from {{ cookiecutter.package_name }}.worker.config import WorkerConfig
from {{ cookiecutter.package_name }}.worker.consumer import describe
from {{ cookiecutter.package_name }}.worker.events import OutboxRecord

logger = structlog.get_logger(__name__)

Publish = Callable[[Sequence[OutboxRecord]], Awaitable[None]]
MAX_FAILURE_DELAY = 10.0


class OutboxStore(Protocol):
    async def relay(self, limit: int, publish: Publish) -> int: ...


class Relay:
    def __init__(self, store: OutboxStore, publish: Publish, config: WorkerConfig) -> None:
        self.store = store
        self.publish = publish
        self.config = config
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        failure_delay = 0.0
        while not self.stopping.is_set():
            try:
                count = await self.store.relay(self.config.batch_size, self.publish)
            except Exception as exc:  # noqa: BLE001 - the rows stay; the next batch retries them
                failure_delay = min(
                    max(failure_delay * 2, self.config.poll_interval), MAX_FAILURE_DELAY
                )
                logger.warning("outbox relay failed", error=describe(exc), retry_in=failure_delay)
                await self._pause(failure_delay)
                continue
            failure_delay = 0.0
            if count:
                logger.info("outbox relayed", count=count)
            # A full batch suggests more are waiting: claim the next one at once.
            if count < self.config.batch_size:
                await self._pause(self.config.poll_interval)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
