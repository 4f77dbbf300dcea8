"""The edge of every request, one pure ASGI layer (each layer costs a call and a send wrapper).

Unlike BaseHTTPMiddleware it neither buffers nor re-wraps responses.
"""

import re
import secrets
import time

import structlog
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.core import metrics
from {{ cookiecutter.package_name }}.core.logging_config import request_id
from {{ cookiecutter.package_name }}.core.shutdown import is_draining

access_logger = structlog.get_logger("access")
logger = structlog.get_logger(__name__)

# What proxies and meshes send (a UUID, or hex digits like nginx's $request_id).
# Anything else, a repeated header included, is replaced by a fresh id.
REQUEST_ID = re.compile(rb"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[0-9a-fA-F]{16,64}")


def incoming_request_id(scope: Scope) -> bytes | None:
    found = [value for name, value in scope["headers"] if name == b"x-request-id"]
    if len(found) == 1 and REQUEST_ID.fullmatch(found[0]):
        return found[0]
    return None


def route_template(scope: Scope) -> str:
    """The path template of the API route that answered, e.g. `/api/v1/items/{item_id}`."""
    route = scope.get("route")
    return route.path if isinstance(route, APIRoute) else metrics.UNMATCHED


class EdgeMiddleware:
    """Name each request, answer it even when the app fails, and log and count it once.

    - The id is the caller's X-Request-ID when it is well formed, else a new one. It is returned
      in the response's X-Request-ID and logged with every event of the request.
    - An exception no handler took is logged with its traceback and answered 500 JSON, inside
      the request id (unlike Starlette's last-resort handler), so both carry the same id.
    - One access event per request, with its status and duration. The request metrics
      (core/metrics.py) count it too, by route template, and hold it in flight until answered;
      probes excepted.
    - While the worker drains, responses ask clients to reconnect: the next connection finds a
      ready pod.
    - HEAD is answered as GET (the server sends no body): probes and load balancers use it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        method = scope["method"]
        if method == "HEAD":
            scope = {**scope, "method": "GET"}
        header = incoming_request_id(scope) or secrets.token_hex(16).encode()
        token = request_id.set(header.decode())
        status = 0

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", header)]
                if is_draining():
                    MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        measured = scope["path"] not in metrics.PROBES
        if measured:
            metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            logger.exception("unhandled error", method=scope["method"], path=scope["path"])
            if status:
                raise
            response = JSONResponse({"detail": "Internal server error"}, status_code=500)
            await response(scope, receive, send_with_request_id)
        finally:
            seconds = time.perf_counter() - started
            if measured:
                metrics.IN_FLIGHT.dec()
                metrics.observe(method, route_template(scope), status or 500, seconds)
            access_logger.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status or 500,
                duration_ms=round(seconds * 1000, 2),
            )
            request_id.reset(token)
