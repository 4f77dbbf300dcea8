"""A uvicorn worker for gunicorn that drains before it stops.

On SIGTERM a plain uvicorn worker stops accepting connections at once. This one first keeps
serving for SHUTDOWN_DRAIN_SECONDS while `/ready` answers 503 and responses ask clients to close
their connections, so load balancers that poll readiness move traffic away before the listener
closes. Then it shuts down as usual, letting in-flight requests finish.

It also answers requests that cannot be parsed as HTTP with JSON, like every other error.
"""

import json
import signal
import sys
import time
from types import FrameType
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from {{ cookiecutter.package_name }}.core.settings import get_settings
from {{ cookiecutter.package_name }}.core.shutdown import is_draining, start_draining


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
    }

    async def _serve(self) -> None:
        # Same as UvicornWorker._serve, with the draining server.
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        server.drain_seconds = get_settings().shutdown_drain_seconds
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
