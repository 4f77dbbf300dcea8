"""Channel messages between workers and pods, through Redis pub/sub.

Each worker process holds one subscription connection and SUBSCRIBEs once per channel that has
local connections, however many; a reader task hands every message to those connections'
queues without waiting on any of them. Messages reach Redis as the text frame the clients
receive, encoded once per publish. Pub/sub is at-most-once: while this worker's subscription is
down, what is published meanwhile does not reach its clients (README, "Real-time channels").
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import JsonValue
from redis.asyncio import Redis
from redis.exceptions import RedisError

from {{ cookiecutter.package_name }}.channels.schemas import CloseCode, MessageFrame
from {{ cookiecutter.package_name }}.core import metrics

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

    from {{ cookiecutter.package_name }}.channels.connection import Connection

logger = structlog.get_logger(__name__)

# Redis channel names: no clash with other applications that share the server.
KEY_PREFIX = "{{ cookiecutter.project_slug }}:channel:"
# Seconds between PINGs on the subscription connection: a Redis that stops answering (a
# dropped network path sends no error) is noticed within PING_INTERVAL + REDIS_TIMEOUT.
PING_INTERVAL = 1.0
# Reconnection backoff, doubling from the first delay up to the last.
RETRY_FIRST_DELAY = 0.1
RETRY_MAX_DELAY = 2.0
# What a failing Redis raises: its own errors, the OS's, and timeouts (ours and redis-py's).
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class ChannelUnavailableError(Exception):
    """Redis cannot carry the message or the subscription now; a retry may succeed."""


class MessageTooBigError(Exception):
    pass


class ChannelHub:
    def __init__(self, redis: Redis, *, timeout: float, max_message_bytes: int) -> None:
        self.redis = redis
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self.connected = False
        self._first_connection = asyncio.Event()
        self.connection_count = 0
        self._members: dict[str, set[Connection]] = {}
        # Per channel: True once Redis confirmed the subscription, False if the connection failed.
        self._subscribed: dict[str, asyncio.Future[bool]] = {}
        # Per channel: SUBSCRIBEs sent on the current connection and not confirmed yet. A channel
        # left and joined again before the first confirmation is subscribed only by the last.
        self._unconfirmed: dict[str, int] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the reader; wait up to REDIS_TIMEOUT for it to connect, so a worker that just
        started does not refuse its first clients. A Redis that is down does not stop the
        start: the reader keeps trying, and /ready answers 503 meanwhile."""
        self._reader = asyncio.create_task(self._read_forever(), name="channel hub reader")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                await self._first_connection.wait()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def publish(self, channel: str, data: JsonValue) -> str:
        """Publish to every subscriber of the channel, on every pod; returns the message's id."""
        message_id = secrets.token_hex(16)
        frame = MessageFrame(channel=channel, id=message_id, data=data).model_dump_json()
        payload = frame.encode()
        if len(payload) > self.max_message_bytes:
            raise MessageTooBigError(f"message above {self.max_message_bytes} bytes")
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.publish(KEY_PREFIX + channel, payload)
        except REDIS_ERRORS as exc:
            logger.warning("publish failed", channel=channel, error=type(exc).__name__)
            raise ChannelUnavailableError("Redis unreachable: try again later") from exc
        return message_id

    async def unready_reason(self, seconds: float) -> str | None:
        """Why the channels cannot work now (the readiness probe's answer), or None."""
        if not self.connected:
            return "subscription connection down"
        try:
            async with asyncio.timeout(seconds):
                await self.redis.ping()
        except TimeoutError:
            return f"no answer within {seconds}s"
        except (RedisError, OSError) as exc:
            return type(exc).__name__
        return None

    async def join(self, connection: Connection) -> None:
        """Add the connection to its channel; returns once Redis confirmed the subscription."""
        if not self.connected or self._pubsub is None:
            raise ChannelUnavailableError("Redis unreachable: try again later")
        channel = connection.channel
        self._members.setdefault(channel, set()).add(connection)
        self.connection_count += 1
        subscribed = self._subscribed.get(channel)
        try:
            if subscribed is None:
                subscribed = asyncio.get_running_loop().create_future()
                self._subscribed[channel] = subscribed
                self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
                await self._pubsub.subscribe(KEY_PREFIX + channel)
            async with asyncio.timeout(self.timeout):
                if not await asyncio.shield(subscribed):
                    raise ChannelUnavailableError("Redis subscription lost")
        except (*REDIS_ERRORS, ChannelUnavailableError, asyncio.CancelledError) as exc:
            await self.leave(connection)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ChannelUnavailableError("Redis unreachable: try again later") from exc

    async def leave(self, connection: Connection) -> None:
        channel = connection.channel
        members = self._members.get(channel)
        if members is None or connection not in members:
            return
        members.remove(connection)
        self.connection_count -= 1
        if members:
            return
        del self._members[channel]
        subscribed = self._subscribed.pop(channel, None)
        if subscribed is not None and not subscribed.done():
            subscribed.cancel()
        if self._pubsub is not None and self.connected:
            # On failure the reader reconnects, and subscribes only channels that have members.
            with contextlib.suppress(*REDIS_ERRORS):
                await self._pubsub.unsubscribe(KEY_PREFIX + channel)

    def close_all(self, code: CloseCode, reason: str) -> None:
        for members in self._members.values():
            for connection in members:
                connection.close(code, reason)

    async def _read_forever(self) -> None:
        delay = RETRY_FIRST_DELAY
        while True:
            pubsub = self.redis.pubsub()
            try:
                await self._resubscribe(pubsub)
                await self._read(pubsub)
            except REDIS_ERRORS as exc:
                # Logged once per outage: when a working connection fails, or the first try does.
                if self.connected or delay == RETRY_FIRST_DELAY:
                    logger.warning("redis subscription down", error=type(exc).__name__)
                if self.connected:
                    delay = RETRY_FIRST_DELAY
                self._disconnected()
            except Exception:
                # A bug must not end the fan-out for good: log it and start over.
                logger.exception("channel hub reader failed")
                self._disconnected()
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call] # redis-py leaves it untyped
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    async def _resubscribe(self, pubsub: PubSub) -> None:
        """Connect, and subscribe to every channel that still has local connections."""
        self._pubsub = pubsub
        self._unconfirmed = dict.fromkeys(self._members, 1)
        loop = asyncio.get_running_loop()
        self._subscribed = {channel: loop.create_future() for channel in self._members}
        async with asyncio.timeout(self.timeout):
            await pubsub.ping()
            if self._members:
                await pubsub.subscribe(*(KEY_PREFIX + channel for channel in self._members))

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        last_ping = last_heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL)
            now = loop.time()
            if message is not None:
                last_heard = now
                self._handle(message)
            elif now - last_heard > PING_INTERVAL + self.timeout:
                raise TimeoutError("no answer to PING")
            if now - last_ping >= PING_INTERVAL:
                await pubsub.ping()
                last_ping = now

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            channel = message["channel"][len(KEY_PREFIX) :].decode()
            try:
                text = message["data"].decode()
            except UnicodeDecodeError:
                # Not published by this service: clients get JSON text only.
                logger.warning("message dropped: not UTF-8", channel=channel)
                return
            members = self._members.get(channel)
            if not members:
                return
            # One ASGI message for all: nothing downstream changes it.
            send = {"type": "websocket.send", "text": text}
            for connection in members:
                connection.deliver(send)
            # Counted once per message, not per client: a metrics write per frame would cost
            # a broadcast to thousands of clients more than its sends.
            metrics.WEBSOCKET_MESSAGES_SENT.inc(len(members))
        elif kind == "subscribe":
            channel = message["channel"][len(KEY_PREFIX) :].decode()
            left = self._unconfirmed.get(channel, 0) - 1
            if left > 0:
                self._unconfirmed[channel] = left
                return
            self._unconfirmed.pop(channel, None)
            subscribed = self._subscribed.get(channel)
            if subscribed is not None and not subscribed.done():
                subscribed.set_result(True)
        elif kind == "pong" and not self.connected:
            self.connected = True
            self._first_connection.set()
            logger.info("redis subscription connected", channels=len(self._members))

    def _disconnected(self) -> None:
        self.connected = False
        self._pubsub = None
        for subscribed in self._subscribed.values():
            if not subscribed.done():
                subscribed.set_result(False)
