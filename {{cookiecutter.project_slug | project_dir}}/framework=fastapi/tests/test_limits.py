import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from {{ cookiecutter.package_name }}.core import shutdown
from {{ cookiecutter.package_name }}.core.limits import RequestLimitsMiddleware
from {{ cookiecutter.package_name }}.core.middleware import EdgeMiddleware


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Wrapped as in main.py: inside the server-error handler, around the routes.
    limits = {"max_body_bytes": 100, "max_header_bytes": 2000, "max_query_bytes": 50}
    app = Starlette(
        routes=[Route("/", echo_size, methods=["GET", "POST"])],
        middleware=[
            Middleware(EdgeMiddleware),
            Middleware(RequestLimitsMiddleware, **limits),
        ],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_requests_within_the_limits_pass(client: httpx.AsyncClient) -> None:
    response = await client.post("/?q=small", content=b"x" * 100)

    assert response.status_code == 200
    assert response.json() == {"received": 100}


async def test_oversized_parts_are_refused_before_the_app_sees_them(
    client: httpx.AsyncClient,
) -> None:
    body = await client.post("/", content=b"x" * 101)
    query = await client.get("/", params={"q": "x" * 60})
    headers = await client.get("/", headers={"X-Big": "x" * 3000})

    assert (body.status_code, body.json()) == (413, {"detail": "Request body too large"})
    assert (query.status_code, query.json()) == (414, {"detail": "Query string too long"})
    assert (headers.status_code, headers.json()) == (431, {"detail": "Request headers too large"})


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 20

    response = await client.post("/", content=chunks())

    assert response.status_code == 413


async def test_responses_ask_clients_to_reconnect_while_draining(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await client.get("/")
    monkeypatch.setattr(shutdown, "_draining", threading.Event())
    shutdown.start_draining()
    during = await client.get("/")

    assert "connection" not in before.headers
    assert during.headers["connection"] == "close"
