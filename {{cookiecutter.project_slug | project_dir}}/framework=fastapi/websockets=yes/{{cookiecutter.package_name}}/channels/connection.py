"""One WebSocket client of a channel: its own send queue, sender task and age limit.

The hub hands each message to `deliver`, which never waits: a client that reads slowly fills
only its own queue (uvicorn's send waits for the socket to drain, so it holds only its own
sender) and is closed with 4008 once the queue is full, while the others go on receiving.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import structlog
from pydantic import JsonValue, ValidationError
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from {{ cookiecutter.package_name }}.channels.hub import ChannelUnavailableError, MessageTooBigError
from {{ cookiecutter.package_name }}.channels.schemas import CloseCode, PublishFrame, SubscribedFrame
from {{ cookiecutter.package_name }}.core import metrics

Publish = Callable[[str, JsonValue], Awaitable[str]]

logger = structlog.get_logger(__name__)

# Closes uvicorn's protocol sends itself, before the application hears of them: a frame above
# the size limit, and text that is not UTF-8. Any other close the server did not send is the
# client's (or its network's).
PROTOCOL_CLOSES = frozenset({CloseCode.INVALID_PAYLOAD, CloseCode.MESSAGE_TOO_BIG})


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        channel: str,
        *,
        queue_size: int,
        max_age: float,
        close_timeout: float,
    ) -> None:
        self.websocket = websocket
        self.channel = channel
        # Seconds the close frame may wait for a client that stopped reading (a full queue):
        # it sees the 4008 if it reads again within them; then its socket is dropped.
        self.close_timeout = close_timeout
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=queue_size)
        # Up to 10% earlier: connections opened together (by a rollout) do not all end together.
        self.max_age = max_age * (1 - random.uniform(0, 0.1))  # noqa: S311 - jitter, not a secret
        self.sent = 0
        # The close the server decided on, or the one it heard of.
        self.code: int | None = None
        self.reason = ""
        # Closed already (by the client, or by the protocol): no close frame left to send.
        self.disconnected = False
        self._ended = asyncio.Event()

    @property
    def closed_by_client(self) -> bool:
        return self.disconnected and self.code not in PROTOCOL_CLOSES

    def deliver(self, message: Message) -> None:
        """Queue a `websocket.send` message for the client, without waiting."""
        if self._ended.is_set():
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.close(CloseCode.TOO_SLOW, "too slow: the send queue is full")

    def close(self, code: CloseCode, reason: str) -> None:
        """End the connection with this close code; the first reason given wins."""
        if not self._ended.is_set():
            self.code, self.reason = code, reason
            self._ended.set()

    async def serve(self, publish: Publish) -> None:
        """Send `subscribed` and then the queued frames, handle the client's, until the
        connection ends; then close it."""
        started = time.monotonic()
        tasks = [
            asyncio.create_task(self._send_queued()),
            asyncio.create_task(self._receive(publish)),
        ]
        try:
            async with asyncio.timeout(self.max_age):
                await self._ended.wait()
        except TimeoutError:
            self.close(CloseCode.GOING_AWAY, "connection age limit reached: reconnect")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self.disconnected:
            await self._send_close()
        metrics.WEBSOCKET_CLOSES.labels("client" if self.closed_by_client else str(self.code)).inc()
        logger.info(
            "websocket closed",
            channel=self.channel,
            code=self.code,
            reason=self.reason,
            by="client" if self.closed_by_client else "server",
            duration_s=round(time.monotonic() - started, 3),
            messages_sent=self.sent,
        )

    async def _send_close(self) -> None:
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.websocket.close(int(self.code or CloseCode.INTERNAL_ERROR), self.reason)
        except (TimeoutError, WebSocketDisconnect):
            # Gone, or not reading: the server drops the socket when the handler returns.
            pass

    def _disconnected(self, code: int, reason: str) -> None:
        if not self._ended.is_set():
            self.code, self.reason, self.disconnected = code, reason, True
            self._ended.set()

    async def _send_queued(self) -> None:
        try:
            await self.websocket.send_text(SubscribedFrame(channel=self.channel).model_dump_json())
            while True:
                message: Message | None = await self.queue.get()
                # What queued meanwhile goes out in the same wake-up.
                while message is not None:
                    await self.websocket.send(message)
                    self.sent += 1
                    message = None if self.queue.empty() else self.queue.get_nowait()
        except WebSocketDisconnect as exc:
            self._disconnected(exc.code, exc.reason)
        except Exception:
            logger.exception("websocket send failed", channel=self.channel)
            self.close(CloseCode.INTERNAL_ERROR, "internal error")

    async def _receive(self, publish: Publish) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    self._disconnected(message.get("code", 1005), message.get("reason") or "")
                    return
                text = message.get("text")
                if text is None:
                    self.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported")
                    return
                try:
                    frame = PublishFrame.model_validate_json(text)
                except ValidationError:
                    self.close(
                        CloseCode.INVALID_PAYLOAD, 'expected {"type": "publish", "data": <JSON>}'
                    )
                    return
                # One publish at a time: a client's messages reach Redis in the order it sent them.
                await publish(self.channel, frame.data)
        except MessageTooBigError as exc:
            self.close(CloseCode.MESSAGE_TOO_BIG, str(exc))
        except ChannelUnavailableError as exc:
            self.close(CloseCode.TRY_AGAIN_LATER, str(exc))
        except Exception:
            logger.exception("websocket receive failed", channel=self.channel)
            self.close(CloseCode.INTERNAL_ERROR, "internal error")
