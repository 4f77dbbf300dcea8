"""structlog and stdlib logging, wired into one pipeline.

Everything that logs (this app, uvicorn, gunicorn and the libraries underneath) ends up in the
same formatter, so production output is one JSON object per line and development output is
readable.
"""

import logging.config
import sys
from typing import Any

import structlog
from asgi_correlation_id import correlation_id

from {{ cookiecutter.package_name }}.settings import Settings


def add_request_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    request_id = correlation_id.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def drop_color_message(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # uvicorn attaches an ANSI-coloured copy of some messages; the plain one is enough.
    event_dict.pop("color_message", None)
    return event_dict


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_request_id,
    drop_color_message,
    structlog.processors.StackInfoRenderer(),
]


def use_json(settings: Settings) -> bool:
    if settings.log_format == "auto":
        return not sys.stdout.isatty()
    return settings.log_format == "json"


def logging_dict_config(settings: Settings) -> dict[str, Any]:
    """The stdlib `dictConfig` for the whole process; gunicorn.conf.py passes it to gunicorn too."""
    if use_json(settings):
        renderer: list[Any] = [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer()]
    quiet = {"level": "WARNING", "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": SHARED_PROCESSORS,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *renderer,
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


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_dict_config(settings))
    # Python warnings too, instead of raw text on stderr.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
