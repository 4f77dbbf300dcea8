"""Process-wide shutdown state, shared by the gunicorn worker and the readiness probe."""

import threading

_draining = threading.Event()


def start_draining() -> None:
    _draining.set()


def is_draining() -> bool:
    return _draining.is_set()
