"""structlog and stdlib logging, wired into one pipeline.

Everything that logs (this app, its request events, Django, gunicorn, uvicorn) goes through the
same processors and renderer, so production output is one JSON object per line and development
output is readable. settings.py hands the dict to Django as LOGGING; gunicorn.conf.py hands the
same dict to gunicorn, whose master process never loads Django. The app's own events, the two of
every request among them, are rendered by structlog and written straight to stdout, without the
stdlib LogRecord, handler and formatter that would cost each event several times as much.
Records from other loggers take the stdlib path, with ProcessorFormatter applying the same
processors.
"""

import logging
import sys
import threading
from typing import Any

import structlog
from django.conf import settings

from {{ cookiecutter.package_name }}.core.tracing import add_trace_ids

SHARED_PROCESSORS: list[Any] = [
    # core.middleware.RequestLogMiddleware binds request_id and the client's ip here.
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_trace_ids,
    structlog.processors.StackInfoRenderer(),
]


def drop_color_message(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # uvicorn attaches an ANSI-coloured copy of some messages; the plain one is enough.
    event_dict.pop("color_message", None)
    return event_dict


# Records from stdlib loggers may carry `extra=` fields.
FOREIGN_PROCESSORS: list[Any] = [
    *SHARED_PROCESSORS,
    structlog.stdlib.ExtraAdder(),
    drop_color_message,
]


def use_json(log_format: str) -> bool:
    if log_format == "auto":
        return not sys.stdout.isatty()
    return log_format == "json"


def renderer(*, json_output: bool) -> list[Any]:
    if json_output:
        return [
            # Tracebacks as JSON, without each frame's local variables: they may hold secrets.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    return [structlog.dev.ConsoleRenderer()]


def logging_dict_config(*, json_output: bool, level: str) -> dict[str, Any]:
    """The stdlib `dictConfig` for the whole process."""
    to_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": FOREIGN_PROCESSORS,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *renderer(json_output=json_output),
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
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        "loggers": {
            # Replace the plain-text handlers Django, gunicorn and uvicorn install for themselves.
            "django": to_root,
            "django.server": to_root,
            # Its "Not Found: /path" and "Internal Server Error: /path" lines repeat the
            # request_finished and request_failed events.
            "django.request": {**to_root, "level": "CRITICAL"},
            "gunicorn.error": to_root,
            "uvicorn": to_root,
            "uvicorn.error": to_root,
            # The app logs every request; the servers' access logs would repeat it.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


class StdoutLogger:
    """Writes each rendered event to sys.stdout as it is now.

    structlog's WriteLogger binds the stream it is created with; cached loggers outlive that
    stream when output is redirected later (tests capture it), so this looks it up.
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


def configure_structlog() -> None:
    """structlog's own loggers render their events and write them out themselves."""
    # Python warnings too, instead of raw text on stderr.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*SHARED_PROCESSORS, *renderer(json_output=use_json(settings.LOG_FORMAT))],
        logger_factory=StdoutLogger,
        wrapper_class=structlog.make_filtering_bound_logger(settings.LOG_LEVEL.upper()),
        cache_logger_on_first_use=True,
    )
