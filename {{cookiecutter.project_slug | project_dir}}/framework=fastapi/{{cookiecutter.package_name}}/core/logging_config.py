"""structlog and stdlib logging, wired into one pipeline.

Everything that logs (this app, uvicorn, gunicorn and the libraries underneath) goes through the
same processors and renderer, so production output is one JSON object per line and development
output is readable. The app's own events, the access event of every request among them, are
rendered by structlog (with orjson) and written straight to stdout, without the stdlib
LogRecord, handler and formatter that would cost each event several times as much. Records from
other loggers take the stdlib path, with ProcessorFormatter applying the same processors.
"""

import logging.config
import sys
import threading
from contextvars import ContextVar
from typing import Any

import orjson
import structlog

from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.core.tracing import add_trace_ids

# The id of the request being served (core/middleware.py sets it).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def add_request_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    current = request_id.get()
    if current is not None:
        event_dict.setdefault("request_id", current)
    return event_dict


def drop_color_message(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # uvicorn attaches an ANSI-coloured copy of some messages; the plain one is enough.
    event_dict.pop("color_message", None)
    return event_dict


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_request_id,
    add_trace_ids,
    structlog.processors.StackInfoRenderer(),
]
# Records from stdlib loggers carry `extra=` fields, and uvicorn's a coloured copy of the message.
FOREIGN_PROCESSORS: list[Any] = [
    *SHARED_PROCESSORS,
    structlog.stdlib.ExtraAdder(),
    drop_color_message,
]


def use_json(settings: Settings) -> bool:
    if settings.log_format == "auto":
        return not sys.stdout.isatty()
    return settings.log_format == "json"


# Tracebacks as JSON, without each frame's local variables: they may hold secrets.
JSON_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def json_dumps(event: Any, **options: Any) -> str:
    # orjson renders the access event of every request in a fraction of json.dumps's time.
    rendered = orjson.dumps(event, default=options.get("default"), option=orjson.OPT_NON_STR_KEYS)
    return rendered.decode()


def renderer(settings: Settings) -> list[Any]:
    if use_json(settings):
        return [JSON_TRACEBACKS, structlog.processors.JSONRenderer(serializer=json_dumps)]
    return [structlog.dev.ConsoleRenderer()]


def logging_dict_config(settings: Settings) -> dict[str, Any]:
    """The stdlib `dictConfig` for the whole process; gunicorn.conf.py passes it to gunicorn too."""
    quiet = {"level": "WARNING", "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": FOREIGN_PROCESSORS,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *renderer(settings),
                ],
            },
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "structlog",
            },
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["stdout"]},
        "loggers": {
            # Route server loggers to the root handler instead of their own plain-text handlers.
            "gunicorn.error": {"handlers": [], "propagate": True},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # The app emits one structured access event per request (see middleware.py).
            "gunicorn.access": quiet,
            "uvicorn.access": quiet,
        },
    }


class StdoutLogger:
    """Writes each rendered event to sys.stdout as it is now.

    structlog's WriteLogger binds the stream it is created with; cached loggers outlive that
    stream when output is redirected later (tests capture it per test), so this looks it up.
    """

    lock = threading.Lock()

    def __init__(self, name: str = "root") -> None:
        # Read by add_logger_name, as it reads a stdlib logger's name.
        self.name = name

    def msg(self, message: str) -> None:
        with self.lock:
            sys.stdout.write(message + "\n")
            sys.stdout.flush()

    debug = info = warning = error = critical = exception = msg


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_dict_config(settings))
    # Python warnings too, instead of raw text on stderr.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*SHARED_PROCESSORS, *renderer(settings)],
        logger_factory=StdoutLogger,
        wrapper_class=structlog.make_filtering_bound_logger(settings.log_level.upper()),
        cache_logger_on_first_use=True,
    )
