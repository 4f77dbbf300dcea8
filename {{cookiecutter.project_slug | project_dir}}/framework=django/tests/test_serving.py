"""The server layer in front of Django: probes without a thread, size limits, bounded threads."""

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from pytest_django import Settings

from {{ cookiecutter.package_name }}.core.serving import ServingApplication

Message = Mapping[str, Any]
App = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]
END = {"type": "http.request", "body": b"", "more_body": False}


def http(
    path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers or [],
    }


async def call(app: App, scope: dict[str, Any], *incoming: Message) -> list[Message]:
    messages = list(incoming or [END])
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def answer(sent: list[Message]) -> tuple[int, dict[bytes, bytes], bytes]:
    start, *body = sent
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in body)


async def django_must_not_see_it(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("the request reached Django")


async def reads_the_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def serve(
    app: App, scope: dict[str, Any], *incoming: Message
) -> tuple[int, dict[bytes, bytes], bytes]:
    async def run() -> list[Message]:
        return await call(ServingApplication(app), scope, *incoming)

    return answer(asyncio.run(run()))


def test_health_is_answered_without_django_or_a_thread() -> None:
    status, headers, body = serve(django_must_not_see_it, http("/health"))
    head = serve(django_must_not_see_it, http("/health", "HEAD"))

    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers[b"content-type"] == b"application/json"
    assert len(headers[b"x-request-id"]) == 36
    assert (head[0], head[2]) == (200, b"")


def test_a_well_formed_request_id_is_kept() -> None:
    request_id = b"0123456789abcdef0123456789abcdef"
    _, headers, _ = serve(
        django_must_not_see_it, http("/health", headers=[(b"x-request-id", request_id)])
    )

    assert headers[b"x-request-id"] == request_id


def test_requests_over_the_size_limits_never_reach_django(settings: Settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    too_long = http("/" + "a" * settings.MAX_REQUEST_LINE_BYTES)
    many = http("/", headers=[(b"x-h%d" % n, b"v") for n in range(settings.MAX_HEADER_FIELDS + 1)])
    large = http("/", headers=[(b"x-big", b"a" * settings.MAX_HEADER_FIELD_BYTES)])
    declared = http("/", "POST", [(b"content-length", b"1001")])

    statuses = [
        serve(django_must_not_see_it, scope)[0] for scope in (too_long, many, large, declared)
    ]

    assert statuses == [414, 431, 431, 413]


def test_a_body_without_a_length_is_cut_off_at_the_limit(settings: Settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    chunk = {"type": "http.request", "body": b"x" * 600, "more_body": True}

    status, _, body = serve(reads_the_body, http("/", "POST"), chunk, chunk, END)

    assert status == 413
    assert json.loads(body) == {"detail": "Request body too large"}


def test_synchronous_code_runs_on_one_of_the_worker_threads() -> None:
    names: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        names.append(await sync_to_async(lambda: threading.current_thread().name)())
        await reads_the_body(scope, receive, send)

    assert serve(app, http("/api/v1/items"))[0] == 204
    assert names[0].startswith("request")


def test_a_request_that_finds_no_thread_free_in_time_gets_503(settings: Settings) -> None:
    settings.WORKER_THREADS = 1
    settings.REQUEST_QUEUE_TIMEOUT = 0.1

    async def run() -> tuple[list[Message], list[Message]]:
        release = asyncio.Event()

        async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await release.wait()
            await reads_the_body(scope, receive, send)

        app = ServingApplication(slow)
        first = asyncio.create_task(call(app, http("/api/v1/items")))
        await asyncio.sleep(0.01)
        second = await call(app, http("/api/v1/items"))
        release.set()
        return await first, second

    first, second = asyncio.run(run())
    status, headers, body = answer(second)

    assert answer(first)[0] == 204
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    assert json.loads(body) == {"detail": "Server busy, try again later"}


def test_lifespan_starts_and_shuts_down() -> None:
    async def run() -> list[Message]:
        return await call(
            ServingApplication(django_must_not_see_it),
            {"type": "lifespan"},
            {"type": "lifespan.startup"},
            {"type": "lifespan.shutdown"},
        )

    assert [message["type"] for message in asyncio.run(run())] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
