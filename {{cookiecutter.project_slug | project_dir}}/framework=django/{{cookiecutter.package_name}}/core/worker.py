"""A gthread worker for gunicorn that drains before it stops, and answers its own errors in JSON.

On SIGTERM gunicorn's ThreadWorker stops accepting connections at once. This one first keeps
serving for SHUTDOWN_DRAIN_SECONDS while `/ready` answers 503 and every response closes its
connection, so load balancers that poll readiness move traffic away before the listener closes.
Then it stops as usual, letting in-flight requests finish; the master's GRACEFUL_TIMEOUT, counted
from its own SIGTERM, bounds the whole.
"""

import json
import socket
import threading
from types import FrameType

from django.conf import settings
from gunicorn import util
from gunicorn.http.message import Request
from gunicorn.workers.gthread import TConn, ThreadWorker

from {{ cookiecutter.package_name }}.core.shutdown import is_draining, start_draining


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error responses (bad request line, 414, 431) as the app's JSON errors.

    gunicorn answers them before Django sees the request, with an HTML page that repeats what
    it could not parse; clients get `{"detail": reason}` like every other error of the service.
    """
    body = json.dumps({"detail": reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class DrainingThreadWorker(ThreadWorker):
    def init_process(self) -> None:
        # The worker's handle_error writes through util.write_error: one place for every error.
        util.write_error = write_json_error
        super().init_process()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain_seconds = settings.SHUTDOWN_DRAIN_SECONDS
        if not self.alive or is_draining() or drain_seconds <= 0:
            # A second SIGTERM ends the drain early.
            super().handle_exit(sig, frame)
            return
        start_draining()
        # ThreadWorker.handle_exit only flags the main loop and wakes it up: safe from a thread.
        stop = threading.Timer(drain_seconds, super().handle_exit, (sig, frame))
        stop.daemon = True
        stop.start()

    def handle_request(self, req: Request, conn: TConn) -> bool:
        if is_draining():
            # "Connection: close": the client's next request opens a connection to a ready pod.
            req.force_close()
        return super().handle_request(req, conn)
