"""Where an app's time per request goes, without a server or a network: the ratio's explanation.

    <venv>/bin/python benchmarks/app_cost.py asgi orders_service.main:create_app out.json
    <venv>/bin/python benchmarks/app_cost.py wsgi orders_service.settings out.json

Runs in the project's own virtual environment and directory (serving.py starts it there). Calls
the application directly with a GET /health, in batches, and keeps the best batch's time per
request: once with every middleware, then once without each middleware in turn, so the
difference is what that middleware costs. Log output goes to /dev/null; it is still rendered.
Best-of-batches of CPU time, the variants taking turns, is steadier than a loaded server on a
shared machine.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BATCHES = 5
REQUESTS_PER_BATCH = 5000
WARMUP_REQUESTS = 1000


def best_microseconds(calls: dict[str, Callable[[], int]]) -> dict[str, float | None]:
    """Best CPU time per request of each variant; None when its answer is not a 200.

    The variants take turns batch by batch, so a change in the machine's load (it is shared)
    reaches all of them alike; CPU time of this thread leaves out the time it waited for a core.
    """
    answering = {name: call for name, call in calls.items() if call() == 200}
    for call in answering.values():
        for _ in range(WARMUP_REQUESTS):
            call()
    best = dict.fromkeys(answering, float("inf"))
    for _ in range(BATCHES):
        for name, call in answering.items():
            started = time.thread_time()
            for _ in range(REQUESTS_PER_BATCH):
                call()
            best[name] = min(best[name], (time.thread_time() - started) / REQUESTS_PER_BATCH)
    return {name: round(best[name] * 1e6, 1) if name in best else None for name in calls}


def asgi_costs(target: str) -> dict[str, float | None]:
    """`module:create_app` builds a fresh app per variant; `module:app` is measured as it is."""
    module_name, _, name = target.partition(":")
    found = getattr(importlib.import_module(module_name), name)
    make = found if inspect.isfunction(found) else lambda: found
    loop = asyncio.new_event_loop()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/health",
        "raw_path": b"/health",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"benchmark")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def caller(app: Any) -> Callable[[], int]:
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        def call() -> int:
            loop.run_until_complete(app(dict(scope), receive, send))
            return statuses.pop()

        return call

    app = make()
    calls = {"every middleware": caller(app)}
    for left_out in [entry.cls.__name__ for entry in app.user_middleware]:
        variant = make()
        variant.user_middleware = [
            entry for entry in variant.user_middleware if entry.cls.__name__ != left_out
        ]
        calls[f"without {left_out}"] = caller(variant)
    return best_microseconds(calls)


def wsgi_costs(settings_module: str) -> dict[str, float | None]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    django.setup()
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/health",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }

    def caller() -> Callable[[], int]:
        # The handler reads settings.MIDDLEWARE when it is built.
        handler = WSGIHandler()
        statuses: list[int] = []

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            statuses.append(int(status.split()[0]))

        def call() -> int:
            response = handler({**environ, "wsgi.input": _EmptyInput()}, start_response)
            b"".join(response)
            response.close()
            return statuses.pop()

        return call

    every = list(settings.MIDDLEWARE)
    calls = {"every middleware": caller()}
    for left_out in every:
        settings.MIDDLEWARE = [entry for entry in every if entry != left_out]
        try:
            calls[f"without {left_out.rsplit('.', 1)[1]}"] = caller()
        finally:
            settings.MIDDLEWARE = every
    return best_microseconds(calls)


class _EmptyInput:
    def read(self, *_: object) -> bytes:
        return b""

    def readline(self, *_: object) -> bytes:
        return b""


def main() -> None:
    kind, target, output = sys.argv[1:4]
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
    costs = asgi_costs(target) if kind == "asgi" else wsgi_costs(target)
    # Variants whose /health is no longer a 200 (the middleware answers it) are left out.
    Path(output).write_text(json.dumps({name: cost for name, cost in costs.items() if cost}))


if __name__ == "__main__":
    main()
