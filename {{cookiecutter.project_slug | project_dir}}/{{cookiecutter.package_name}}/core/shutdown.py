{% if cookiecutter.websockets == "yes" -%}
"""Process-wide shutdown state, shared by the gunicorn worker, the readiness probe and the
WebSocket channels."""

import threading
from collections.abc import Callable

_draining = threading.Event()
# Run by the worker when the drain ends, before the server's own shutdown: the channels close
# their WebSockets with a code and a reason, where uvicorn's shutdown would close them bare.
_drain_end_hooks: list[Callable[[], None]] = []
{%- else -%}
"""Process-wide shutdown state, shared by the gunicorn worker and the readiness probe."""

import threading

_draining = threading.Event()
{%- endif %}


def start_draining() -> None:
    _draining.set()


def is_draining() -> bool:
    return _draining.is_set()
{%- if cookiecutter.websockets == "yes" %}


def on_drain_end(hook: Callable[[], None]) -> Callable[[], None]:
    """Run `hook` when the drain ends; call what this returns to remove it again."""
    _drain_end_hooks.append(hook)
    return lambda: _drain_end_hooks.remove(hook)


def end_draining() -> None:
    for hook in list(_drain_end_hooks):
        hook()
{%- endif %}
