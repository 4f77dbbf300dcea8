"""A uvicorn worker for gunicorn that drains before it stops.

On SIGTERM a plain uvicorn worker stops accepting connections at once. This one first keeps
serving for SHUTDOWN_DRAIN_SECONDS while `/ready` answers 503 and responses ask clients to close
their connections, so load balancers that poll readiness move traffic away before the listener
closes. Then it shuts down as usual, letting in-flight requests finish.
{%- if cookiecutter.websockets == "yes" %}
WebSockets are served through the drain too; when it ends the application closes each one with
1012 and a reason, and the worker waits for those closing handshakes (WEBSOCKET_CLOSE_SECONDS at
most) before uvicorn's shutdown, which would close them without a reason and drop their sockets.
{%- endif %}

It also answers requests that cannot be parsed as HTTP with JSON, like every other error, and
leaves access logging to the application, which logs each request with its request id.
"""

import json
import logging
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any, ClassVar

{% if cookiecutter.framework == "django" -%}
from django.conf import settings
{% endif -%}
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

{% if cookiecutter.websockets == "yes" -%}
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings
{% elif cookiecutter.framework == "fastapi" -%}
from {{ cookiecutter.package_name }}.core.settings import get_settings
{% endif -%}
{% if cookiecutter.websockets == "yes" -%}
from {{ cookiecutter.package_name }}.core.shutdown import end_draining, is_draining, start_draining
{% else -%}
from {{ cookiecutter.package_name }}.core.shutdown import is_draining, start_draining
{% endif -%}
from {{ cookiecutter.package_name }}.core.tracing import stop_tracing
{%- if cookiecutter.websockets == "yes" %}

# uvicorn's own wait for a closing handshake: a client that never answers is dropped then.
WEBSOCKET_CLOSE_SECONDS = 10.0


def websocket_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's WebSocket settings, from the application's (the tests' server uses them too)."""
    return {
        # Its send waits until the client's socket drains: a slow client holds only its own
        # sender, whose queue then fills (channels/connection.py).
        "ws": "websockets-sansio",
        # Larger frames are refused by the protocol itself, with 1009.
        "ws_max_size": settings.ws_max_message_bytes,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
    }
{%- endif %}


class DrainingServer(Server):
    drain_seconds = 0.0
    drain_deadline: float | None = None
{%- if cookiecutter.websockets == "yes" %}
    close_deadline: float | None = None
{%- endif %}

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_seconds > 0 and not is_draining():
            start_draining()
            self.drain_deadline = time.monotonic() + self.drain_seconds
            # Re-raised by uvicorn after shutdown, like any signal it captured.
            self._captured_signals.append(sig)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
{%- if cookiecutter.websockets == "yes" %}
        now = time.monotonic()
        if self.drain_deadline is not None and now >= self.drain_deadline:
            if self.close_deadline is None:
                end_draining()
                self.close_deadline = now + WEBSOCKET_CLOSE_SECONDS
            if now >= self.close_deadline or not self.open_websockets():
                self.should_exit = True
{%- else %}
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.should_exit = True
{%- endif %}
        return await super().on_tick(counter)
{%- if cookiecutter.websockets == "yes" %}

    def open_websockets(self) -> bool:
        protocol = self.config.ws_protocol_class
        connections = self.server_state.connections
        return protocol is not None and any(isinstance(conn, protocol) for conn in connections)
{%- endif %}

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # The worker then ends by the signal that stopped it, which skips the exit handlers that
        # would send the spans still waiting for their batch.
        stop_tracing()


class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, answering an unparseable request with JSON instead of plain text."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"detail": "Bad request"}).encode()
        head = [b"HTTP/1.1 400 Bad Request"]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


{% if cookiecutter.websockets == "yes" -%}
class QuietWebSocketHandshakes(logging.Filter):
    """Drops the two lines uvicorn logs for each WebSocket handshake: thousands of clients
    reconnecting after a rollout would flood the log, and the app logs each connection's end."""

    HANDSHAKE_LINES = ('%s - "WebSocket ', "connection open")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not str(record.msg).startswith(self.HANDSHAKE_LINES)


{% endif -%}
class DrainingUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": JsonErrorsHttpToolsProtocol,
        "access_log": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn-worker gives uvicorn's logger gunicorn's handlers and stops it propagating;
        # gunicorn's logger has none (logconfig_dict routes it to the root's): nothing would show.
        error_log = logging.getLogger("uvicorn.error")
        error_log.handlers = []
        error_log.propagate = True
{%- if cookiecutter.websockets == "yes" %}
        error_log.addFilter(QuietWebSocketHandshakes())
{%- endif %}
{%- if cookiecutter.websockets == "yes" %}
        for name, value in websocket_options(get_settings()).items():
            setattr(self.config, name, value)
{%- endif %}

    async def _serve(self) -> None:
        # Same as UvicornWorker._serve, with the draining server.
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
{%- if cookiecutter.framework == "django" %}
        server.drain_seconds = settings.SHUTDOWN_DRAIN_SECONDS
{%- else %}
        server.drain_seconds = get_settings().shutdown_drain_seconds
{%- endif %}
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
