"""A uvicorn worker for gunicorn that drains before it stops.

On SIGTERM a plain uvicorn worker stops accepting connections at once. This one first keeps
serving for SHUTDOWN_DRAIN_SECONDS while `/ready` answers 503 and responses ask clients to close
their connections, so load balancers that poll readiness move traffic away before the listener
closes. Then it shuts down as usual, letting in-flight requests finish.

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

{% if cookiecutter.framework == "fastapi" -%}
from {{ cookiecutter.package_name }}.core.settings import get_settings
{% endif -%}
from {{ cookiecutter.package_name }}.core.shutdown import is_draining, start_draining
from {{ cookiecutter.package_name }}.core.tracing import stop_tracing


class DrainingServer(Server):
    drain_seconds = 0.0
    drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_seconds > 0 and not is_draining():
            start_draining()
            self.drain_deadline = time.monotonic() + self.drain_seconds
            # Re-raised by uvicorn after shutdown, like any signal it captured.
            self._captured_signals.append(sig)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.should_exit = True
        return await super().on_tick(counter)

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
