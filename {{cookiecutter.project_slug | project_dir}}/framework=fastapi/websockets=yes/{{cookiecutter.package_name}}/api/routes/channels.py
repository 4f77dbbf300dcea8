"""Channels: clients join one over a WebSocket and publish to it there or over HTTP."""

import contextlib
import re
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Request, WebSocket, status
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from {{ cookiecutter.package_name }}.api.responses import Responses
from {{ cookiecutter.package_name }}.channels.connection import Connection
from {{ cookiecutter.package_name }}.channels.hub import (
    ChannelHub,
    ChannelUnavailableError,
    MessageTooBigError,
)
from {{ cookiecutter.package_name }}.channels.schemas import (
    CHANNEL_PATTERN,
    CloseCode,
    Published,
    PublishRequest,
)
from {{ cookiecutter.package_name }}.core import metrics
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.core.shutdown import is_draining
from {{ cookiecutter.package_name }}.schemas import Error

router = APIRouter(prefix="/api/v1/channels", tags=["channels"])
logger = structlog.get_logger(__name__)

CHANNEL_NAME = re.compile(CHANNEL_PATTERN)
UNAVAILABLE = "Channels unavailable, try again later"

PUBLISH_ERRORS: Responses = {
    413: {"model": Error, "description": "The message is above WS_MAX_MESSAGE_BYTES"},
    503: {
        "model": Error,
        "description": "Redis is unreachable; try again after Retry-After seconds",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    },
}


def get_hub(request: Request) -> ChannelHub:
    return request.app.state.hub


Hub = Annotated[ChannelHub, Depends(get_hub)]
Channel = Annotated[
    str, Path(pattern=CHANNEL_PATTERN, description="Lowercase letters, digits, '.', '_', '-'")
]


@router.post("/{channel}/messages", status_code=status.HTTP_202_ACCEPTED, responses=PUBLISH_ERRORS)
async def publish_message(channel: Channel, payload: PublishRequest, hub: Hub) -> Published:
    """Publish to every client of the channel, on every pod."""
    try:
        message_id = await hub.publish(channel, payload.data)
    except MessageTooBigError:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"Message above {hub.max_message_bytes} bytes",
        ) from None
    except ChannelUnavailableError:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=UNAVAILABLE,
            headers={"Retry-After": "1"},
        ) from None
    return Published(id=message_id, channel=channel)


@router.websocket("/{channel}/ws")
async def channel_socket(websocket: WebSocket, channel: str) -> None:
    """Join the channel: a `subscribed` frame, then every message published to it."""
    hub: ChannelHub = websocket.app.state.hub
    settings: Settings = websocket.app.state.settings
    # Refused before the handshake, so the client retries (another pod, or later) at once.
    if is_draining() or not hub.connected:
        reason = "draining" if is_draining() else "redis unreachable"
        logger.info("websocket refused", channel=channel, reason=reason)
        response = JSONResponse(
            {"detail": UNAVAILABLE}, status_code=503, headers={"Retry-After": "1"}
        )
        await websocket.send_denial_response(response)
        return
    await websocket.accept()
    metrics.WEBSOCKET_CONNECTIONS.inc()
    try:
        if not CHANNEL_NAME.fullmatch(channel):
            await close_early(websocket, CloseCode.POLICY_VIOLATION, "invalid channel name")
            return
        if hub.connection_count >= settings.ws_max_connections:
            await close_early(websocket, CloseCode.TRY_AGAIN_LATER, "server full: try again later")
            return
        connection = Connection(
            websocket,
            channel,
            queue_size=settings.ws_send_queue_size,
            max_age=settings.ws_max_connection_age,
            # As long as the server's pings would keep it: uvicorn drops it then anyway.
            close_timeout=settings.ws_ping_interval + settings.ws_ping_timeout,
        )
        try:
            await hub.join(connection)
        except ChannelUnavailableError as exc:
            await close_early(websocket, CloseCode.TRY_AGAIN_LATER, str(exc))
            return
        try:
            await connection.serve(hub.publish)
        finally:
            await hub.leave(connection)
    finally:
        metrics.WEBSOCKET_CONNECTIONS.dec()


async def close_early(websocket: WebSocket, code: CloseCode, reason: str) -> None:
    channel = websocket.path_params["channel"]
    logger.info("websocket closed", channel=channel, code=code, reason=reason, by="server")
    metrics.WEBSOCKET_CLOSES.labels(str(int(code))).inc()
    with contextlib.suppress(WebSocketDisconnect):
        await websocket.close(code, reason)
