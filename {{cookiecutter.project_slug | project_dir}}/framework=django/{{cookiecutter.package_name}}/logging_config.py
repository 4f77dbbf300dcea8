"""structlog and stdlib logging, wired into one pipeline.

Everything that logs (this app, django-structlog's request events, Django, gunicorn) ends up in
the same formatter, so production output is one JSON object per line and development output is
readable. settings.py hands the dict to Django as LOGGING; gunicorn.conf.py hands the same dict to
gunicorn, whose master process never loads Django.
"""

import logging
import sys
from typing import Any

import structlog

SHARED_PROCESSORS: list[Any] = [
    # django-structlog binds request_id (and the client's ip) here for the whole request.
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def use_json(log_format: str) -> bool:
    if log_format == "auto":
        return not sys.stdout.isatty()
    return log_format == "json"


def logging_dict_config(*, json_output: bool, level: str) -> dict[str, Any]:
    """The stdlib `dictConfig` for the whole process."""
    if json_output:
        renderer: list[Any] = [
            # Tracebacks as JSON, without each frame's local variables: they may hold secrets.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer()]
    to_root = {"handlers": [], "propagate": True}
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
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        "loggers": {
            # Replace the plain-text handlers Django and gunicorn install for themselves.
            "django": to_root,
            "django.server": to_root,
            # Its "Not Found: /path" and "Internal Server Error: /path" lines repeat
            # django-structlog's request_finished and request_failed events.
            "django.request": {**to_root, "level": "CRITICAL"},
            "gunicorn.error": to_root,
            # django-structlog logs every request; gunicorn's access log would repeat it.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


def configure_structlog() -> None:
    """structlog's own loggers hand their events to the stdlib pipeline above."""
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
