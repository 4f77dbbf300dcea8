"""Jinja filters that quote user-supplied text for the format it lands in.

Loaded by cookiecutter through ``_extensions`` in ``cookiecutter.json``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension


def toml_string(value: object) -> str:
    # A JSON string without ASCII escaping is a valid TOML basic string.
    return json.dumps(str(value), ensure_ascii=False)


def yaml_string(value: object) -> str:
    # A JSON string is a valid YAML double-quoted scalar; it keeps leading '-', '&', '!' literal.
    return json.dumps(str(value), ensure_ascii=False)


def python_string(value: object) -> str:
    return repr(str(value))


def dockerfile_string(value: object) -> str:
    # A JSON string is a valid double-quoted Dockerfile word once `$` cannot start a variable.
    return json.dumps(str(value), ensure_ascii=False).replace("$", "\\$")


def markdown_text(value: object) -> str:
    """Escape the characters that would turn plain text into Markdown markup or HTML."""
    text = str(value)
    for char in "\\`*_{}[]<>#|!":
        text = text.replace(char, "\\" + char)
    return text


def project_dir(slug: object) -> str:
    """The output directory's name, never a path that escapes the output directory.

    The directory is created before the pre-generation hook can reject the slug; an empty slug
    would name the output directory itself, and '/' or '..' another place. Such slugs get a
    throw-away name, which cookiecutter removes when the hook fails.
    """
    name = str(slug)
    if name.strip(".") and "/" not in name and "\\" not in name:
        return name
    return f".invalid-project-slug-{secrets.token_hex(4)}"


class QuotingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["toml_string"] = toml_string
        environment.filters["yaml_string"] = yaml_string
        environment.filters["python_string"] = python_string
        environment.filters["markdown_text"] = markdown_text
        environment.filters["dockerfile_string"] = dockerfile_string
        environment.filters["project_dir"] = project_dir
        # The hooks import this package; cookiecutter's `_repo_dir` can be relative to a cwd
        # the hook scripts do not share, so hand them an absolute path.
        environment.globals["bakery_path"] = str(Path(__file__).resolve().parents[1])
