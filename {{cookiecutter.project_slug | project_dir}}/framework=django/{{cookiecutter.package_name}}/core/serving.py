"""What the server layer does before Django: probes, size limits and a bound on running requests.

Under ASGI, Django runs each request's synchronous code (middleware, views, the ORM) on a thread.
Here that thread is one of WORKER_THREADS, each running one request at a time and holding at most
one database connection (the pool in settings.py is as large). A request that finds no thread
free within REQUEST_QUEUE_TIMEOUT gets 503 with Retry-After: a burst, or requests stuck behind a
locked table, cannot grow threads, connections or the wait without bound.

Answered here, on the event loop, without a request thread: `/health`, so liveness never waits
for a thread or the database; `/ready`, whose time-boxed check has a thread of its own; and
requests over the size limits, which uvicorn's parser does not enforce.

Every request but the probes is counted here too (core/metrics.py), by the URL pattern its path
resolves to, those refused for want of a thread included; it is in flight from its arrival, its
wait for a thread included, since that wait is the queue a busy pod builds.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any{% if cookiecutter.database == "postgresql" %}, cast{% endif %}

import structlog
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
{%- if cookiecutter.database == "postgresql" %}
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql.base import DatabaseWrapper
{%- endif %}
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from {{ cookiecutter.package_name }}.core import metrics, views
from {{ cookiecutter.package_name }}.core.middleware import REQUEST_ID
from {{ cookiecutter.package_name }}.core.shutdown import is_draining

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = structlog.stdlib.get_logger(__name__)


class BodyTooLargeError(Exception):
    pass


class RequestThreads:
    """A fixed set of threads, each lent to one request at a time, in order of arrival."""

    def __init__(self, count: int) -> None:
        self.free = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="request") for _ in range(count)
        ]
        # asyncio.Semaphore admits waiters first come, first served: a request that arrives
        # while others wait queues behind them. (An asyncio.Queue of threads lets newcomers take
        # a thread ahead of a woken waiter, so a few unlucky requests wait many turns.)
        self.admission = asyncio.Semaphore(count)

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> bool:
        """Run `app` with its sync code on a free thread; False when none was free in time."""
        try:
            async with asyncio.timeout(settings.REQUEST_QUEUE_TIMEOUT):
                await self.admission.acquire()
        except TimeoutError:
            return False
        thread = self.free.pop()
        try:
            # Django's own per-request context finds this one and uses its thread.
            async with ThreadSensitiveContext(executor=thread):
                await app(scope, receive, send)
        finally:
            try:
                # A request Django gave up on (the client left) may still run there: lend the
                # thread again once it is idle.
                await asyncio.wrap_future(thread.submit(lambda: None))
            finally:
                self.free.append(thread)
                self.admission.release()
        return True


class ServingApplication:
    """Django's ASGI application behind the probes, the limits and the bounded threads."""

    probes: dict[str, Callable[[], Awaitable[JsonResponse]]]

    def __init__(self, django: ASGIApp) -> None:
        self.django = django
        self.threads = RequestThreads(settings.WORKER_THREADS)
        self.probes = {"/health": health, "/ready": views.ready_async}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self.django(scope, receive, send)
            return
        if scope["path"] in metrics.PROBES:
            await self.serve(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.serve(scope, receive, send_noting_status)
        except Exception:
            status = status or 500  # what uvicorn answers
            raise
        finally:
            metrics.IN_FLIGHT.dec()
            # 499, as nginx logs it: the client left before Django answered.
            seconds = time.perf_counter() - started
            metrics.observe(scope["method"], self.route(scope["path"]), status or 499, seconds)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        rejected = self.over_limits(scope)
        if rejected is not None:
            await self.respond(scope, send, rejected, close=True)
            return
        probe = self.probes.get(scope["path"])
        if probe is not None and scope["method"] in ("GET", "HEAD"):
            await self.respond(scope, send, await probe())
            return
        if is_draining():
            send = close_connection(send)
        try:
            served = await self.threads.run(self.django, scope, limit_body(receive), send)
        except BodyTooLargeError:
            # Chunked bodies have no Content-Length: cut off once they pass the limit.
            await self.respond(scope, send, too_large(), close=True)
            return
        if not served:
            busy = JsonResponse({"detail": "Server busy, try again later"}, status=503)
            busy["Retry-After"] = "1"
            await self.respond(scope, send, busy)

    def route(self, path: str) -> str:
        """The URL pattern `path` resolves to, like request.resolver_match.route, or "unmatched"."""
        try:
            return "/" + resolve(path).route
        except Resolver404:
            return metrics.UNMATCHED

    def over_limits(self, scope: Scope) -> JsonResponse | None:
        query = scope["query_string"]
        path = scope.get("raw_path") or scope["path"].encode()
        # As on the wire: "METHOD path?query HTTP/1.1".
        line = len(scope["method"]) + len(path) + (len(query) + 1 if query else 0) + 10
        if line > settings.MAX_REQUEST_LINE_BYTES:
            return JsonResponse({"detail": "Request line too long"}, status=414)
        headers = scope["headers"]
        if len(headers) > settings.MAX_HEADER_FIELDS or any(
            len(name) + len(value) + 2 > settings.MAX_HEADER_FIELD_BYTES for name, value in headers
        ):
            return JsonResponse({"detail": "Request header fields too large"}, status=431)
        for name, value in headers:
            if name == b"content-length" and (
                not value.isdigit() or int(value) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            ):
                return too_large()
        return None

    async def respond(
        self, scope: Scope, send: Send, response: HttpResponse, *, close: bool = False
    ) -> None:
        """Send a response Django did not make, logged as Django's requests are."""
        request_id = incoming_request_id(scope) or str(uuid.uuid4())
        body = response.content
        headers = [(key.lower().encode(), val.encode("latin-1")) for key, val in response.items()]
        headers += [(b"content-length", b"%d" % len(body)), (b"x-request-id", request_id.encode())]
        if close or is_draining():
            headers.append((b"connection", b"close"))
        status = response.status_code
        await send({"type": "http.response.start", "status": status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else body
        await send({"type": "http.response.body", "body": body})
        log = logger.info if response.status_code < 400 else logger.warning
        log(
            "request_finished",
            request=f"{scope['method']} {scope['path']}",
            code=response.status_code,
            request_id=request_id,
        )

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
{%- if cookiecutter.database == "postgresql" %}
                # Connections end with the worker, not when the database notices it is gone.
                database = cast(DatabaseWrapper, connections[DEFAULT_DB_ALIAS])
                await asyncio.to_thread(database.close_pool)
{%- endif %}
                await send({"type": "lifespan.shutdown.complete"})
                return


async def health() -> JsonResponse:
    return JsonResponse(views.HEALTHY)


def incoming_request_id(scope: Scope) -> str | None:
    """The proxy's X-Request-ID when it is well formed, as core/middleware.py takes it."""
    found = [value for name, value in scope["headers"] if name == b"x-request-id"]
    if len(found) == 1:
        value = found[0].decode("latin-1")
        if REQUEST_ID.fullmatch(value):
            return value
    return None


def too_large() -> JsonResponse:
    return JsonResponse({"detail": "Request body too large"}, status=413)


def limit_body(receive: Receive) -> Receive:
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                raise BodyTooLargeError
        return message

    return limited


def close_connection(send: Send) -> Send:
    """Responses ask the client to reconnect, to a pod that is not going away."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"connection", b"close")]
            message = {**message, "headers": headers}
        await send(message)

    return closing
