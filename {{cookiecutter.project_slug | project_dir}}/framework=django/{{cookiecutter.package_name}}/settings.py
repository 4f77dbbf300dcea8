"""Django settings, read from environment variables (and a local `.env` file in development).

`.env.example` and the README document every variable. ENVIRONMENT=production switches on the
{%- if cookiecutter.database == "postgresql" %}
deployment checklist (`python manage.py check --deploy`) and makes SECRET_KEY, ALLOWED_HOSTS and
DATABASE_URL required: a missing one stops the process with a message naming it.
{%- if cookiecutter.worker != "none" %} The event worker
requires BROKER_URL too.
{%- endif %}
{%- else %}
deployment checklist (`python manage.py check --deploy`) and makes SECRET_KEY and ALLOWED_HOSTS
required: a missing one stops the process with a message naming it.

The project has no database: no DATABASES, so Django's placeholder backend refuses any query, and
none of the apps that keep their state in one (admin, auth, sessions, messages).
{%- endif %}
"""

from pathlib import Path
{%- if cookiecutter.database == "postgresql" %}
from typing import Any
from urllib.parse import urlsplit
{%- endif %}

import environ
from django.core.exceptions import ImproperlyConfigured

from {{ cookiecutter.package_name }}.logging_config import logging_dict_config, use_json

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is invalid: use one of {', '.join(choices)}")
    return value


# The checkout's `.env` (never in the image) holds ENVIRONMENT=development and a development
# SECRET_KEY. The real environment wins over it, and one that says production ignores it.
if env.str("ENVIRONMENT", default="") != "production":
    environ.Env.read_env(BASE_DIR / ".env")
# Production unless told otherwise: an image started without its ConfigMap shows no debug pages.
ENVIRONMENT = choice("ENVIRONMENT", "production", ("development", "production"))
PRODUCTION = ENVIRONMENT == "production"
DEBUG = not PRODUCTION


def development_default(value: object) -> object:
    """A default for development only: in production the variable must be set."""
    return environ.Env.NOTSET if PRODUCTION else value


# No default, in any environment: a key in the code would be the same for every deployment.
SECRET_KEY = env.str("SECRET_KEY")
# Comma-separated; the overlays' ConfigMaps put one name per line.
ALLOWED_HOSTS = [
    host.strip() for host in env.list("ALLOWED_HOSTS", default=development_default([]))
]
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
{%- if cookiecutter.database == "postgresql" %}
    # First, so that its runserver (which checks the database first) replaces staticfiles' one.
    "{{ cookiecutter.package_name }}.core",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
{%- else %}
    "{{ cookiecutter.package_name }}.core",
{%- endif %}
    "{{ cookiecutter.package_name }}.items",
]

MIDDLEWARE = [
    # First: binds the request id and the client's address to every log line of the request,
    # and logs its start and end.
    "{{ cookiecutter.package_name }}.core.middleware.RequestLogMiddleware",
    "{{ cookiecutter.package_name }}.core.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
{%- if cookiecutter.database == "postgresql" %}
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
{%- endif %}
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
{%- if cookiecutter.database == "postgresql" %}
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
{%- endif %}
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
{%- if cookiecutter.database == "postgresql" %}
    "{{ cookiecutter.package_name }}.core.database.DatabaseUnavailableMiddleware",
{%- endif %}
]

# Requests each worker process runs at once, each on a thread of its own (core/serving.py); a
# request that finds none free within REQUEST_QUEUE_TIMEOUT seconds gets 503.
WORKER_THREADS = env.int("WORKER_THREADS", default=4)
REQUEST_QUEUE_TIMEOUT = env.float("REQUEST_QUEUE_TIMEOUT", default=5.0)

ROOT_URLCONF = "{{ cookiecutter.package_name }}.urls"
# gunicorn serves the ASGI application (asgi.py); `make run`'s development server the WSGI one.
ASGI_APPLICATION = "{{ cookiecutter.package_name }}.asgi.application"
WSGI_APPLICATION = "{{ cookiecutter.package_name }}.wsgi.application"
{%- if cookiecutter.database == "postgresql" %}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def postgresql_url(name: str, default: object) -> dict[str, Any]:
    """The database settings from the URL in `name`, checked before django-environ reads it.

    django-environ warns about a URL it cannot parse by printing it, password included; a
    malformed one stops the process here instead, with one line that names the variable only.
    """
    url = env.str(name, default=default)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or "://" not in url or parts.scheme not in POSTGRESQL_SCHEMES:
        raise SystemExit(
            f"Configuration error: {name} is not a postgresql://USER:PASSWORD@HOST:PORT/NAME URL"
            " (its value is not shown: it may hold a password)"
        )
    return env.db_url_config(url)


POSTGRESQL_SCHEMES = ("postgresql", "postgres", "pgsql")
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/{{ cookiecutter.package_name }}"
DATABASES = {"default": postgresql_url("DATABASE_URL", development_default(LOCAL_DATABASE_URL))}
# A connection pool per process, as large as the number of requests it runs at once
# (WORKER_THREADS): a request that holds a thread finds a connection. Connections are checked
# when handed out, so one that died while idle is replaced; while the database is down or slow,
# a request waits at most DATABASE_POOL_TIMEOUT for one, then gets 503. psycopg_pool retries a
# lost connection with doubling delays for reconnect_timeout (5 minutes by default), so after a
# long outage it could sleep minutes past the database's return; giving up after a few seconds
# instead lets the next request open a connection at once.
DATABASES["default"].update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=True)
DATABASES["default"].setdefault("OPTIONS", {}).update(
    connect_timeout=env.int("DATABASE_CONNECT_TIMEOUT", default=3),
    application_name="{{ cookiecutter.project_slug }}",
    options=f"-c statement_timeout={env.int('DATABASE_STATEMENT_TIMEOUT_MS', default=15000)}",
    pool={
        "min_size": WORKER_THREADS,
        "max_size": WORKER_THREADS,
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=3.0),
        "reconnect_timeout": 5.0,
    },
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
{%- else %}

# Django's default: a placeholder backend that raises ImproperlyConfigured on any query.
DATABASES: dict[str, dict[str, str]] = {}
{%- endif %}

{% if cookiecutter.database == "postgresql" -%}
# Seconds /ready waits for the database before answering 503.
READY_TIMEOUT = env.float("READY_TIMEOUT", default=1.0)
{% endif -%}
# Seconds a gunicorn worker keeps serving after SIGTERM while /ready answers 503 (core/worker.py).
SHUTDOWN_DRAIN_SECONDS = env.float("SHUTDOWN_DRAIN_SECONDS", default=5.0)
# Larger bodies get 413 before Django reads them (core/serving.py), and from Django itself.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_BODY_BYTES", default=1024 * 1024)
# Answered by core/serving.py before Django sees the request: a longer request line (method,
# path and query string) gets 414, more or longer header fields 431.
MAX_REQUEST_LINE_BYTES = env.int("MAX_REQUEST_LINE_BYTES", default=4094)
MAX_HEADER_FIELDS = env.int("MAX_HEADER_FIELDS", default=100)
MAX_HEADER_FIELD_BYTES = env.int("MAX_HEADER_FIELD_BYTES", default=8190)
{%- if cookiecutter.database == "none" %}
# Items each worker's in-memory store holds (items/store.py); creating more answers 507.
MAX_ITEMS = env.int("MAX_ITEMS", default=10_000)
{%- endif %}
{%- if cookiecutter.database == "postgresql" %}
# Seconds `manage.py migrate_locked` waits for another pod's migration to finish.
MIGRATION_LOCK_TIMEOUT = env.float("MIGRATION_LOCK_TIMEOUT", default=300.0)
{%- if cookiecutter.worker != "none" %}

# The event worker (`python manage.py worker`, README.md "Worker"). The web service never talks to
# the broker, so only the worker needs BROKER_URL, and in production it refuses to start without.
{%- if cookiecutter.worker == "rabbitmq" %}
BROKER_URL = env.str(
    "BROKER_URL", default=None if PRODUCTION else "amqp://guest:guest@127.0.0.1:5672/"
)
# The quorum queue of the item events; dead letters go to `<EVENTS_QUEUE>.dead-letter`.
EVENTS_QUEUE = env.str("EVENTS_QUEUE", default="item-events")
{%- else %}
# Comma-separated bootstrap servers, host:port.
BROKER_URL = env.str("BROKER_URL", default=None if PRODUCTION else "127.0.0.1:9092")
# The topic of the item events; dead letters go to `<EVENTS_TOPIC>.dead-letter`.
EVENTS_TOPIC = env.str("EVENTS_TOPIC", default="item-events")
KAFKA_CONSUMER_GROUP = env.str(
    "KAFKA_CONSUMER_GROUP",
    default="{{ cookiecutter.project_slug }}-worker",
)
# Partitions of the topic when the worker has to create it.
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=6)
{%- endif %}
# The worker's /health and /ready.
CONSUMER_PORT = env.int("CONSUMER_PORT", default=8001)
{%- if cookiecutter.worker == "rabbitmq" %}
# Messages the broker hands the worker ahead of their acknowledgement.
{%- else %}
# Records per fetch.
{%- endif %}
CONSUMER_PREFETCH = env.int("CONSUMER_PREFETCH", default=10)
# Deliveries of one message before it goes to the dead letters.
CONSUMER_MAX_ATTEMPTS = env.int("CONSUMER_MAX_ATTEMPTS", default=5)
# Seconds the messages in flight get to finish after SIGTERM.
CONSUMER_GRACEFUL_TIMEOUT = env.float("CONSUMER_GRACEFUL_TIMEOUT", default=20.0)
# The relay's pause when the outbox is empty, and the rows it publishes per transaction.
OUTBOX_POLL_INTERVAL = env.float("OUTBOX_POLL_INTERVAL", default=0.5)
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=100)
{%- endif %}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
{%- endif %}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
{%- if cookiecutter.database == "postgresql" %}

# Collected into the image at build time (`collectstatic`) and served by WhiteNoise, which only
# reads them: the container's root filesystem stays read-only.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
{%- endif %}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "auto" renders JSON when stdout is not a terminal, which is how containers run.
LOG_FORMAT = choice("LOG_FORMAT", "auto", ("auto", "json", "console"))
LOGGING = logging_dict_config(json_output=use_json(LOG_FORMAT), level=LOG_LEVEL)
# Proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client: the list gunicorn
# trusts with X-Forwarded-Proto. The middleware logs the client's address, taken from there.
FORWARDED_ALLOW_IPS = env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1"])

if PRODUCTION:
{%- if cookiecutter.database == "postgresql" %}
    SESSION_COOKIE_SECURE = True
{%- endif %}
    CSRF_COOKIE_SECURE = True
    # Browsers then refuse plain HTTP to this host for a year: try a small value on a first rollout.
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# TLS ends at the ingress, which redirects plain HTTP itself; behind it, kubelet probes and other
# pods in the cluster speak plain HTTP to this one, so the app does not redirect by default.
SILENCED_SYSTEM_CHECKS = ["security.W008"]
