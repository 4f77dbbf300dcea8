"""Request metrics: labelled by route template, timed, in flight until answered; probes never."""

import asyncio
from typing import Any

import httpx
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.core.middleware import EdgeMiddleware

ITEM = "/api/v1/items/{item_id}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def answered(method: str, route: str, status: int) -> float:
    return sample("http_requests_total", method=method, route=route, status=str(status))


async def test_requests_are_counted_by_route_template_never_by_path(
    client: httpx.AsyncClient,
) -> None:
    before = answered("GET", ITEM, 422), answered("GET", "unmatched", 404)

    # Invalid ids, answered before any database is asked.
    for item_id in ("0", "-1", "-2"):
        assert (await client.get(f"/api/v1/items/{item_id}")).status_code == 422
    for path in ("/api/v1/nowhere", "/wp-login.php", "/api/v1/items/1/x"):
        assert (await client.get(path)).status_code == 404

    assert answered("GET", ITEM, 422) == before[0] + 3
    assert answered("GET", "unmatched", 404) == before[1] + 3
    assert sample("http_requests_total", method="GET", route="/api/v1/items/0", status="422") == 0


async def test_methods_outside_http_are_one_label_value(client: httpx.AsyncClient) -> None:
    before = answered("_OTHER", ITEM, 405)

    for method in ("BREW", "PROPFIND"):
        assert (await client.request(method, "/api/v1/items/1")).status_code == 405

    assert answered("_OTHER", ITEM, 405) == before + 2
    assert answered("BREW", ITEM, 405) == 0


async def test_each_request_is_timed_in_the_histogram(client: httpx.AsyncClient) -> None:
    labels = {"method": "GET", "route": "unmatched"}
    count = sample("http_request_duration_seconds_count", **labels)
    within_30s = sample("http_request_duration_seconds_bucket", **labels, le="30.0")

    assert (await client.get("/api/v1/nowhere")).status_code == 404

    assert sample("http_request_duration_seconds_count", **labels) == count + 1
    assert sample("http_request_duration_seconds_bucket", **labels, le="30.0") == within_30s + 1
    assert sample("http_request_duration_seconds_sum", **labels) > 0


async def test_probes_are_not_measured(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    await client.get("/ready")

    for probe in ("/health", "/ready"):
        assert sample("http_request_duration_seconds_count", method="GET", route=probe) == 0


def http(path: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}


async def test_a_request_is_in_flight_until_answered() -> None:
    paths = ["/api/v1/items", "/api/v1/items", "/health", "/ready"]
    arrived: list[str] = []
    all_arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        arrived.append(scope["path"])
        if len(arrived) == len(paths):
            all_arrived.set()
        await release.wait()
        await JSONResponse({})(scope, receive, send)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    app = EdgeMiddleware(slow)
    idle = sample("http_requests_in_flight")
    requests = [asyncio.create_task(app(http(path), receive, send)) for path in paths]
    await all_arrived.wait()

    assert sample("http_requests_in_flight") == idle + 2
    release.set()
    await asyncio.gather(*requests)
    assert sample("http_requests_in_flight") == idle
