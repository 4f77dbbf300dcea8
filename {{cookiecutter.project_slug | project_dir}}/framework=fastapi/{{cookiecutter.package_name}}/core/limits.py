"""Size limits for requests, answered with 4xx before the application sees the request.

Hand-written because uvicorn's httptools parser enforces no header or body size limit and
Starlette has no middleware for it; gunicorn's limit_request_* settings do not reach ASGI workers.
"""

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLargeError(Exception):
    pass


class RequestLimitsMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_header_bytes: int, max_query_bytes: int
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        if len(scope["query_string"]) > self.max_query_bytes:
            await self.reject(scope, receive, send, 414, "Query string too long")
            return
        header_bytes = 0
        content_length = None
        chunked = False
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
        if header_bytes > self.max_header_bytes:
            await self.reject(scope, receive, send, 431, "Request headers too large")
            return
        if content_length is not None and (
            not content_length.isdigit() or int(content_length) > self.max_body_bytes
        ):
            await self.reject(scope, receive, send, 413, "Request body too large")
            return
        if not chunked:
            # The server reads no more than Content-Length says, and no body without one.
            await self.app(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            # A chunked body has no Content-Length: reading stops once it passes the limit.
            if response_started:
                raise
            await self.reject(scope, receive, send, 413, "Request body too large")

    @staticmethod
    async def reject(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        response = JSONResponse(
            {"detail": detail}, status_code=status, headers={"Connection": "close"}
        )
        await response(scope, receive, send)
