"""What happens to one delivered message, whichever broker delivered it.

The effect is stored in one transaction keyed by the event id, so a redelivery (after a crash,
a rebalance or a relay that published twice) applies nothing twice. broker.py acknowledges
according to the outcome, only after that transaction committed.
"""

import asyncio
import enum
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from faststream.message import StreamMessage
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.worker.events import ItemCreated

logger = structlog.get_logger(__name__)

# Waits between retries of a database that is unavailable: a restart would not bring it back.
FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 5.0


class EffectStore(Protocol):
    async def record(self, event: ItemCreated) -> bool: ...

    def is_transient(self, exc: BaseException) -> bool: ...


class Outcome(enum.Enum):
    # Stored now or before: acknowledge.
    DONE = "done"
    # This delivery failed: deliver again, and count it as an attempt.
    FAILED = "failed"
    # It cannot be decoded, and never will: dead-letter it at once.
    POISON = "poison"
    # Stopping while the database is unavailable: give it back, without counting an attempt.
    RETURN = "return"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    # Why it failed, for the dead letter's headers.
    error: str | None = None


async def undecoded(message: StreamMessage[Any]) -> bytes:
    """The subscribers' decoder: the body as it came, for `Consumer.handle` to judge.

    FastStream's own decoder would parse a JSON content type before the handler runs, and a body
    that fails it would never reach the handler to be rejected.
    """
    return message.body


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class Consumer:
    def __init__(self, store: EffectStore) -> None:
        self.store = store
        self.stopping = asyncio.Event()

    async def handle(self, body: bytes, attempt: int) -> Result:
        try:
            event = ItemCreated.model_validate_json(body)
        except ValidationError as exc:
            logger.warning("event rejected", reason=describe(exc), attempt=attempt)
            return Result(Outcome.POISON, describe(exc))
        with structlog.contextvars.bound_contextvars(event_id=str(event.event_id)):
            return await self._store(event, attempt)

    async def _store(self, event: ItemCreated, attempt: int) -> Result:
        delay = FIRST_RETRY_DELAY
        while True:
            try:
                applied = await self.store.record(event)
            except Exception as exc:  # noqa: BLE001 - sorted into unavailable or failed
                if not self.store.is_transient(exc):
                    logger.warning(
                        "event failed", item_id=event.item_id, attempt=attempt, error=describe(exc)
                    )
                    return Result(Outcome.FAILED, describe(exc))
                if self.stopping.is_set():
                    return Result(Outcome.RETURN)
                logger.warning("database unavailable, retrying", delay=delay, error=describe(exc))
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, MAX_RETRY_DELAY)
            else:
                logger.info(
                    "event processed", item_id=event.item_id, applied=applied, attempt=attempt
                )
                return Result(Outcome.DONE)
