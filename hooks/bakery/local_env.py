"""Development secrets generated for this project at bake time, never committed.

The developer's `.env`, and the dev overlay's `k8s/overlays/dev/secrets.env` (the Secret of a
local cluster, with the password of the overlay's own database), so `kubectl apply -k
k8s/overlays/dev` works right after the bake. The generated `.gitignore` keeps both out of git
and `.dockerignore` out of images; production reads the same variables from its own Secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from .facts import DATABASE_URL_VARIABLES, REDIS_SECRET_NAME, derive

DEV_SECRETS = Path("k8s", "overlays", "dev", "secrets.env")
DEV_SECRETS_HEADER = (
    "# The dev overlay's Secret: generated for this project, git-ignored, for a development\n"
    "# cluster only. secrets.env.example shows the same variables; production has its own.\n"
)
HEADER = (
    "# Local development only: generated for this project, git-ignored, never used in production.\n"
    "# .env.example documents every variable.\n"
)


def secret_key() -> str:
    # 50 random bytes: Django's deployment check wants at least 50 characters, all unpredictable.
    return secrets.token_urlsafe(50)


def local_secrets(answers: Mapping[str, object]) -> dict[str, str]:
    """The secrets a development checkout of this combination needs."""
    if answers["framework"] == "django":
        return {"SECRET_KEY": secret_key()}
    return {}


def dev_overlay_secrets(answers: Mapping[str, object]) -> dict[str, str]:
    """What the dev overlay's Secret holds: the app's secrets and the passwords of its database,
    broker and Redis."""
    facts = derive(answers)
    values = {}
    if database := facts.dev_database:
        # URL-safe, so it goes into the URL as it is.
        password = secrets.token_urlsafe(24)
        values[DATABASE_URL_VARIABLES[str(answers["database"])]] = database.url(password)
        values[database.password_key] = password
    if facts.worker is not None:
        broker = facts.worker.dev_broker
        password = secrets.token_urlsafe(24)
        values["BROKER_URL"] = broker.url(password)
        if broker.password_key is not None:
            values[broker.password_key] = password
        management_url = broker.management_url(password)
        if management_url is not None and "RABBITMQ_MANAGEMENT_URL" in facts.secret_names:
            values["RABBITMQ_MANAGEMENT_URL"] = management_url
    if facts.channels is not None:
        redis = facts.channels.dev_redis
        password = secrets.token_urlsafe(24)
        values[REDIS_SECRET_NAME] = redis.url(password)
        values[str(redis.password_key)] = password
    if "SECRET_KEY" in facts.secret_names:
        # Not the .env one: a key is never shared between two environments.
        values["SECRET_KEY"] = secret_key()
    return values


def write_local_env(project: Path, answers: Mapping[str, object]) -> None:
    values = local_secrets(answers)
    if answers["framework"] == "django":
        # Django's settings default to production (what an image started bare gets); this
        # checkout's manage.py commands run in development.
        values = {"ENVIRONMENT": "development", **values}
    if values:
        lines = "".join(f"{name}={value}\n" for name, value in values.items())
        (project / ".env").write_text(HEADER + lines, encoding="utf-8")
    if dev_values := dev_overlay_secrets(answers):
        lines = "".join(f"{name}={value}\n" for name, value in dev_values.items())
        path = project / DEV_SECRETS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEV_SECRETS_HEADER + lines, encoding="utf-8")
