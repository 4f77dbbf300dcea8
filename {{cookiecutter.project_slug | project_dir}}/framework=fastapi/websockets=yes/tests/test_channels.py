"""The channels end to end: the app served by uvicorn on a loopback port, with the production
WebSocket settings, WebSocket clients and HTTP publishers, and the real Redis at REDIS_URL; each
test on a channel of its own."""

import asyncio
import json
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from {{ cookiecutter.package_name }}.api.routes import channels
from {{ cookiecutter.package_name }}.channels.connection import Connection
from {{ cookiecutter.package_name }}.channels.schemas import CloseCode
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.core.shutdown import end_draining
from {{ cookiecutter.package_name }}.core.worker import websocket_options
from {{ cookiecutter.package_name }}.main import create_app
from tests.redis_server import UNREACHABLE_REDIS_URL


def reconnect_delay(attempt: int) -> float:
    """The README's reconnect rule: wait at random up to 0.5 s x 2^attempt, at most 30 s."""
    return random.uniform(0, min(30.0, 0.5 * 2**attempt))  # noqa: S311 - jitter, not a secret


@dataclass
class Served:
    http: httpx.AsyncClient
    ws_url: str

    def publish(self, channel: str, data: Any) -> Any:
        return self.http.post(f"/api/v1/channels/{channel}/messages", json={"data": data})

    def join(self, channel: str) -> Any:
        return connect(f"{self.ws_url}/api/v1/channels/{channel}/ws")


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Served]:
    """The app on a free loopback port, its lifespan (and so its hub) running."""
    config = uvicorn.Config(create_app(settings), log_config=None, **websocket_options(settings))
    server = uvicorn.Server(config)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                yield Served(http, f"ws://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            await serving


@pytest.fixture
def channel() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    async with serve(settings) as served:
        yield served


async def frame(client: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(client.recv(), timeout=5))


async def close_of(client: ClientConnection) -> tuple[int, str]:
    """The close the server ends the connection with; frames before it are skipped."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(skip_frames(client), timeout=5)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def skip_frames(client: ClientConnection) -> None:
    while True:
        await client.recv()


def closes(code: str) -> float:
    return REGISTRY.get_sample_value("websocket_closes_total", {"code": code}) or 0.0


async def test_every_subscriber_receives_what_http_and_websocket_clients_publish(
    served: Served, channel: str
) -> None:
    async with served.join(channel) as first, served.join(channel) as second:
        for client in (first, second):
            assert await frame(client) == {"type": "subscribed", "channel": channel}

        posted = await served.publish(channel, {"n": 1})
        await first.send(json.dumps({"type": "publish", "data": ["from", "a", "socket"]}))

        assert posted.status_code == 202
        assert posted.json() == {"id": posted.json()["id"], "channel": channel}
        for client in (first, second):
            by_http, by_socket = await frame(client), await frame(client)
            assert by_http == {
                "type": "message",
                "channel": channel,
                "id": posted.json()["id"],
                "data": {"n": 1},
            }
            assert by_socket["data"] == ["from", "a", "socket"]
            assert len(by_socket["id"]) == 32
            assert by_socket["id"] != by_http["id"]


async def test_messages_arrive_in_the_order_they_were_published(
    served: Served, channel: str
) -> None:
    async with served.join(channel) as client:
        await frame(client)
        for n in range(20):
            await client.send(json.dumps({"type": "publish", "data": n}))

        assert [(await frame(client))["data"] for _ in range(20)] == list(range(20))


async def test_other_channels_are_not_received(served: Served, channel: str) -> None:
    async with served.join(channel) as client:
        await frame(client)
        await served.publish(f"{channel}-other", "elsewhere")
        await served.publish(channel, "here")

        assert (await frame(client))["data"] == "here"


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("not json", CloseCode.INVALID_PAYLOAD),
        ('{"type": "publish"}', CloseCode.INVALID_PAYLOAD),
        ('{"type": "shout", "data": 1}', CloseCode.INVALID_PAYLOAD),
        (b"\x00binary", CloseCode.UNSUPPORTED_DATA),
    ],
)
async def test_a_bad_frame_closes_the_connection_with_a_code_and_a_reason(
    served: Served, channel: str, sent: str | bytes, code: CloseCode
) -> None:
    before = closes(str(int(code)))
    async with served.join(channel) as client:
        await frame(client)
        await client.send(sent)
        closed_code, reason = await close_of(client)

    assert closed_code == code
    assert reason
    assert closes(str(int(code))) == before + 1


async def test_a_message_above_the_size_limit_is_refused(settings: Settings, channel: str) -> None:
    small = settings.model_copy(update={"ws_max_message_bytes": 200})
    async with serve(small) as served:
        posted = await served.publish(channel, "x" * 200)
        async with served.join(channel) as client:
            await frame(client)
            # Within the frame limit, but not once it is a message frame for the subscribers.
            await client.send(json.dumps({"type": "publish", "data": "x" * 150}))
            too_big_message = await close_of(client)
        async with served.join(channel) as client:
            await frame(client)
            await client.send(json.dumps({"type": "publish", "data": "x" * 300}))
            too_big_frame = await close_of(client)

    assert posted.status_code == 413
    assert posted.json() == {"detail": "Message above 200 bytes"}
    assert too_big_message[0] == CloseCode.MESSAGE_TOO_BIG
    assert too_big_frame[0] == CloseCode.MESSAGE_TOO_BIG


async def test_an_invalid_channel_name_is_refused(served: Served) -> None:
    async with served.join("Not-Lowercase") as client:
        closed = await close_of(client)
    posted = await served.publish("Not-Lowercase", 1)

    assert closed == (CloseCode.POLICY_VIOLATION, "invalid channel name")
    assert posted.status_code == 422


async def test_a_publish_without_data_is_invalid(served: Served, channel: str) -> None:
    posted = await served.http.post(f"/api/v1/channels/{channel}/messages", json={"value": 1})

    assert posted.status_code == 422


async def test_a_full_worker_closes_new_connections_with_try_again_later(
    settings: Settings, channel: str
) -> None:
    one = settings.model_copy(update={"ws_max_connections": 1})
    async with serve(one) as served, served.join(channel) as first:
        await frame(first)
        async with served.join(channel) as second:
            closed = await close_of(second)

    assert closed[0] == CloseCode.TRY_AGAIN_LATER


async def test_a_connection_ends_at_its_age_limit_and_the_client_reconnects(
    settings: Settings, channel: str
) -> None:
    short = settings.model_copy(update={"ws_max_connection_age": 0.3})
    async with serve(short) as served:
        async with served.join(channel) as client:
            await frame(client)
            closed = await close_of(client)
        await asyncio.sleep(reconnect_delay(attempt=0))
        async with served.join(channel) as client:
            resubscribed = await frame(client)

    assert closed[0] == CloseCode.GOING_AWAY
    assert resubscribed == {"type": "subscribed", "channel": channel}


async def test_connections_close_with_service_restart_when_the_drain_ends(
    served: Served, channel: str
) -> None:
    async with served.join(channel) as client:
        await frame(client)
        # What the worker does once SHUTDOWN_DRAIN_SECONDS are over (core/worker.py).
        end_draining()
        closed = await close_of(client)

    assert closed == (CloseCode.SERVICE_RESTART, "server restarting")


async def test_new_connections_are_refused_while_draining(
    served: Served, channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channels, "is_draining", lambda: True)
    with pytest.raises(InvalidStatus) as refused:
        await served.join(channel)

    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "1"


def test_a_client_that_cannot_keep_up_is_closed_and_delays_no_one() -> None:
    slow = Connection(cast(WebSocket, None), "news", queue_size=2, max_age=60, close_timeout=1)
    for n in range(3):
        slow.deliver({"type": "websocket.send", "text": f"message {n}"})

    assert slow.code == CloseCode.TOO_SLOW
    assert slow.queue.qsize() == 2


async def test_without_redis_publishing_fails_fast_and_the_pod_is_not_ready(
    settings: Settings, channel: str
) -> None:
    down = settings.model_copy(update={"redis_url": UNREACHABLE_REDIS_URL, "redis_timeout": 0.5})
    async with serve(down) as served:
        started = time.monotonic()
        posted = await served.publish(channel, 1)
        elapsed = time.monotonic() - started
        ready = await served.http.get("/ready")
        health = await served.http.get("/health")
        with pytest.raises(InvalidStatus) as refused:
            await served.join(channel)

    assert posted.status_code == 503
    assert posted.json() == {"detail": "Channels unavailable, try again later"}
    assert posted.headers["Retry-After"] == "1"
    assert elapsed < 3
    assert ready.status_code == 503
{%- if cookiecutter.database != "mongodb" %}
    assert ready.json()["checks"] == {"redis": "subscription connection down"}
{%- endif %}
    assert health.status_code == 200
    assert refused.value.response.status_code == 503
