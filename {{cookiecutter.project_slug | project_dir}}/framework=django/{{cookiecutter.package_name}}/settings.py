"""Django settings, read from environment variables (and a local `.env` file in development).

`.env.example` and the README document every variable. ENVIRONMENT=production switches on the
{%- if cookiecutter.database == "postgresql" %}
deployment checklist (`python manage.py check --deploy`) and makes SECRET_KEY, ALLOWED_HOSTS and
DATABASE_URL required: a missing one stops the process with a message naming it.
{%- else %}
deployment checklist (`python manage.py check --deploy`) and makes SECRET_KEY and ALLOWED_HOSTS
required: a missing one stops the process with a message naming it.

The project has no database: no DATABASES, so Django's placeholder backend refuses any query, and
none of the apps that keep their state in one (admin, auth, sessions, messages).
{%- endif %}
"""

from pathlib import Path

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


ENVIRONMENT = choice("ENVIRONMENT", "development", ("development", "production"))
PRODUCTION = ENVIRONMENT == "production"
DEBUG = not PRODUCTION
if not PRODUCTION:
    # The generated `.env` holds a development SECRET_KEY; the real environment wins over it.
    environ.Env.read_env(BASE_DIR / ".env")


def development_default(value: object) -> object:
    """A default for development only: in production the variable must be set."""
    return environ.Env.NOTSET if PRODUCTION else value


# No default, in any environment: a key in the code would be the same for every deployment.
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=development_default([]))
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
{%- if cookiecutter.database == "postgresql" %}
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
{%- endif %}
    "{{ cookiecutter.package_name }}.core",
    "{{ cookiecutter.package_name }}.items",
]

MIDDLEWARE = [
    # Binds a request id to every log line of the request and logs its start and end.
    "django_structlog.middlewares.RequestMiddleware",
    "{{ cookiecutter.package_name }}.core.middleware.RequestIdHeaderMiddleware",
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

ROOT_URLCONF = "{{ cookiecutter.package_name }}.urls"
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

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASES = {"default": env.db_url("DATABASE_URL", default=development_default(LOCAL_DATABASE_URL))}
DATABASES["default"].update(
    # gunicorn's gthread workers keep their threads, so one persistent connection per thread is a
    # pool already, without a second queue to wait in when the database is down; the health check
    # replaces a connection that died while idle.
    CONN_MAX_AGE=env.int("DATABASE_CONN_MAX_AGE", default=60),
    CONN_HEALTH_CHECKS=True,
)
DATABASES["default"].setdefault("OPTIONS", {}).update(
    connect_timeout=env.int("DATABASE_CONNECT_TIMEOUT", default=3),
    application_name="{{ cookiecutter.project_slug }}",
    options=f"-c statement_timeout={env.int('DATABASE_STATEMENT_TIMEOUT_MS', default=15000)}",
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
# Larger bodies get 413 (core/views.py); gunicorn.conf.py limits request lines and headers.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_BODY_BYTES", default=1024 * 1024)
{%- if cookiecutter.database == "postgresql" %}
# Seconds `manage.py migrate_locked` waits for another pod's migration to finish.
MIGRATION_LOCK_TIMEOUT = env.float("MIGRATION_LOCK_TIMEOUT", default=300.0)

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
# The proxy in front (ingress, mesh) sets X-Request-ID; a request without one gets a fresh id.
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True
{%- if cookiecutter.database == "postgresql" %}
# No user_id in request logs: looking up a session's user would make logging query the database,
# and turn an outage into 500s for requests that carry a session cookie.
DJANGO_STRUCTLOG_USER_ID_FIELD = None
{%- endif %}

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
