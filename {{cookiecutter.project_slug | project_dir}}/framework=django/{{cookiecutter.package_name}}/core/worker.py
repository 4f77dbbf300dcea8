"""A gthread worker for gunicorn that drains before it stops.

On SIGTERM gunicorn's ThreadWorker stops accepting connections at once. This one first keeps
serving for SHUTDOWN_DRAIN_SECONDS while `/ready` answers 503 and every response closes its
connection, so load balancers that poll readiness move traffic away before the listener closes.
Then it stops as usual, letting in-flight requests finish; the master's GRACEFUL_TIMEOUT, counted
from its own SIGTERM, bounds the whole.
"""

import threading
from types import FrameType

from django.conf import settings
from gunicorn.http.message import Request
from gunicorn.workers.gthread import TConn, ThreadWorker

from {{ cookiecutter.package_name }}.core.shutdown import is_draining, start_draining


class DrainingThreadWorker(ThreadWorker):
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
