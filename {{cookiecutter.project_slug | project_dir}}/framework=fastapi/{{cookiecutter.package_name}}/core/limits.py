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
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            await self.reject(scope, receive, send, 431, "Request headers too large")
            return
        content_length = dict(scope["headers"]).get(b"content-length", b"0")
        if not content_length.isdigit() or int(content_length) > self.max_body_bytes:
            await self.reject(scope, receive, send, 413, "Request body too large")
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
            # Chunked bodies have no Content-Length: stop reading once they pass the limit.
            if response_started:
                raise
            await self.reject(scope, receive, send, 413, "Request body too large")

    @staticmethod
    async def reject(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        response = JSONResponse(
            {"detail": detail}, status_code=status, headers={"Connection": "close"}
        )
        await response(scope, receive, send)
