"""Request metrics, from the server layer: by URL pattern, timed, in flight from arrival."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import REGISTRY
from pytest_django import Settings

from {{ cookiecutter.package_name }}.core.serving import ServingApplication

Message = Mapping[str, Any]
App = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]
ITEM = "/api/v1/items/<int:item_id>"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def answered(method: str, route: str, status: int) -> float:
    return sample("http_requests_total", method=method, route=route, status=str(status))


def http(path: str, method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": b"", "headers": []}


async def call(app: App, scope: dict[str, Any]) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    await app(scope, receive, send)


async def no_content(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def serve(app: App, *scopes: dict[str, Any]) -> None:
    async def run() -> None:
        serving = ServingApplication(app)
        for scope in scopes:
            await call(serving, scope)

    asyncio.run(run())


def test_requests_are_counted_by_url_pattern_never_by_path() -> None:
    before = answered("GET", ITEM, 204), answered("GET", "unmatched", 204)

    serve(no_content, *(http(f"/api/v1/items/{n}") for n in (1, 2, 3)))
    serve(no_content, http("/wp-login.php"), http("/api/v1/items/x"))

    assert answered("GET", ITEM, 204) == before[0] + 3
    assert answered("GET", "unmatched", 204) == before[1] + 2
    assert answered("GET", "/api/v1/items/1", 204) == 0


def test_methods_outside_http_are_one_label_value() -> None:
    before = answered("_OTHER", "/api/v1/items", 204)

    serve(no_content, http("/api/v1/items", "BREW"), http("/api/v1/items", "PROPFIND"))

    assert answered("_OTHER", "/api/v1/items", 204) == before + 2
    assert answered("BREW", "/api/v1/items", 204) == 0


def test_probes_are_not_measured() -> None:
    serve(no_content, http("/health"), http("/ready"))

    for probe in ("/health", "/ready"):
        assert sample("http_request_duration_seconds_count", method="GET", route=probe) == 0


def test_each_request_is_timed_in_the_histogram() -> None:
    labels = {"method": "GET", "route": "/api/v1/items"}
    count = sample("http_request_duration_seconds_count", **labels)

    serve(no_content, http("/api/v1/items"))

    assert sample("http_request_duration_seconds_count", **labels) == count + 1
    assert sample("http_request_duration_seconds_sum", **labels) > 0


def test_a_request_is_in_flight_from_arrival_including_its_wait_for_a_thread(
    settings: Settings,
) -> None:
    settings.WORKER_THREADS = 1
    settings.REQUEST_QUEUE_TIMEOUT = 0.2
    idle = sample("http_requests_in_flight")
    busy = answered("GET", "/api/v1/items", 503)

    async def run() -> list[float]:
        release = asyncio.Event()
        seen: list[float] = []

        async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await release.wait()
            await no_content(scope, receive, send)

        app = ServingApplication(slow)
        running = asyncio.create_task(call(app, http("/api/v1/items")))
        waiting = asyncio.create_task(call(app, http("/api/v1/items")))
        await asyncio.sleep(0.05)
        # The probe is answered meanwhile, and not in flight.
        await call(app, http("/health"))
        seen.append(sample("http_requests_in_flight"))
        await waiting  # refused with 503 once the queue timeout passes
        seen.append(sample("http_requests_in_flight"))
        release.set()
        await running
        seen.append(sample("http_requests_in_flight"))
        return seen

    assert asyncio.run(run()) == [idle + 2, idle + 1, idle]
    assert answered("GET", "/api/v1/items", 503) == busy + 1


def test_a_request_the_client_left_before_an_answer_is_counted_as_499() -> None:
    before = answered("GET", "/api/v1/items", 499)

    async def abandoned(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # What Django does when the client disconnects first: it sends nothing.
        return

    serve(abandoned, http("/api/v1/items"))

    assert answered("GET", "/api/v1/items", 499) == before + 1
