"""The developer's `.env`: secrets generated for this project at bake time, never committed.

The generated `.gitignore` keeps `.env` out of git and `.dockerignore` out of images; production
reads the same variables from the environment (a Kubernetes Secret).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

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


def write_local_env(project: Path, answers: Mapping[str, object]) -> None:
    values = local_secrets(answers)
    if values:
        lines = "".join(f"{name}={value}\n" for name, value in values.items())
        (project / ".env").write_text(HEADER + lines, encoding="utf-8")
