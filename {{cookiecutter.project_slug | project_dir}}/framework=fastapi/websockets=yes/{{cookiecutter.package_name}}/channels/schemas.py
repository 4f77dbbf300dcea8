"""The frames of the channel protocol and the close codes the server sends (README, "Real-time
channels")."""

from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

# Lowercase, so "News" and "news" are never two channels; short enough to log and label.
CHANNEL_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class CloseCode(IntEnum):
    # WS_MAX_CONNECTION_AGE reached: reconnect now (with jitter), probably to another pod.
    GOING_AWAY = 1001
    # A binary frame: the protocol is JSON text.
    UNSUPPORTED_DATA = 1003
    # Not JSON, or not a valid publish frame.
    INVALID_PAYLOAD = 1007
    # An invalid channel name.
    POLICY_VIOLATION = 1008
    # A frame or a message above WS_MAX_MESSAGE_BYTES.
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    # The server is shutting down (SIGTERM): reconnect, another pod takes over.
    SERVICE_RESTART = 1012
    # Redis is unreachable (a publish failed) or this worker holds WS_MAX_CONNECTIONS.
    TRY_AGAIN_LATER = 1013
    # The client read too slowly: WS_SEND_QUEUE_SIZE messages were waiting for it.
    TOO_SLOW = 4008


class PublishFrame(BaseModel):
    """What a client sends on its WebSocket to publish to the channel it joined."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["publish"]
    data: JsonValue


class PublishRequest(BaseModel):
    """The body of `POST /api/v1/channels/{channel}/messages`."""

    model_config = ConfigDict(extra="forbid")

    data: JsonValue


class Published(BaseModel):
    id: str = Field(description="The message's id, 32 hexadecimal digits")
    channel: str


class SubscribedFrame(BaseModel):
    """The first frame of every connection: messages published from now on reach it."""

    type: Literal["subscribed"] = "subscribed"
    channel: str


class MessageFrame(BaseModel):
    """A message, as every subscriber receives it (and as it travels through Redis)."""

    type: Literal["message"] = "message"
    channel: str
    id: str
    data: JsonValue
