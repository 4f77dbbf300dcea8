"""Jinja filters that quote user-supplied text for the format it lands in, and answers kept as text.

Loaded by cookiecutter through ``_extensions`` in ``cookiecutter.json``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
from jinja2 import Environment, pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

from .answers import InvalidAnswer, validate
from .facts import derive

TEMPLATE_ROOT = Path(__file__).resolve().parents[2]
PROJECT_TEMPLATE = "{{cookiecutter.project_slug | project_dir}}"
JINJA_MARKUP = re.compile(r"\{[{%#]")


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


# Characters that start inline markup anywhere in a line: emphasis, code, links, images, HTML,
# entities, tables, strikethrough and GitHub's math; `#` also closes a heading.
MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]<>#|!~&$])")
# What makes a line a list item when it comes first: `-`, `+` (`*` is escaped anyway), or `1.`.
MARKDOWN_BULLET = re.compile(r"^[-+]")
MARKDOWN_ORDERED = re.compile(r"^(\d{1,9})([.)])")
MARKDOWN_EDGE_SPACES = re.compile(r"^ +| +$")


def markdown_text(value: object) -> str:
    """One line of Markdown that renders as exactly this text, never as markup or HTML."""
    text = MARKDOWN_INLINE.sub(r"\\\1", str(value))
    text = MARKDOWN_BULLET.sub(r"\\\g<0>", text)
    text = MARKDOWN_ORDERED.sub(r"\1\\\2", text)
    # Markdown drops spaces at the start and end of a line, and four would start a code block.
    return MARKDOWN_EDGE_SPACES.sub(lambda match: "&#32;" * len(match[0]), text)


class RefusedAnswer(click.ClickException):
    """A bad answer as cookiecutter's command line reports it: one line, exit status 1."""

    def __init__(self, error: InvalidAnswer) -> None:
        super().__init__(str(error))
        self.field = error.field

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


@pass_context
def project_dir(context: Context, slug: object) -> str:
    """The output directory's name, once every answer has passed `answers.validate`.

    Validation lives here because cookiecutter renders this name first: after the last answer,
    before it creates the directory or runs a hook. Refused here, a bad answer leaves nothing on
    disk and is the last line the user sees; a failing pre-generation hook would be followed by
    cookiecutter's traceback, and could not stop a slug such as '..' or '' from naming the
    directory it creates first.
    """
    try:
        validate(context["cookiecutter"])
    except InvalidAnswer as error:
        raise RefusedAnswer(error) from None
    return str(slug)


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


@functools.cache
def template_sources() -> tuple[frozenset[str], tuple[str, ...]]:
    """What of the template cookiecutter renders as Jinja besides its files' contents.

    (texts, paths): cookiecutter.json's values and the hook scripts, whole; the names of the
    template's files and directories, which cookiecutter renders behind their output directory.
    """
    questions = json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
    hooks = (path.read_text(encoding="utf-8") for path in (TEMPLATE_ROOT / "hooks").glob("*.py"))
    project = TEMPLATE_ROOT / PROJECT_TEMPLATE
    names = (path.relative_to(project).as_posix() for path in project.rglob("*"))
    paths = [PROJECT_TEMPLATE, *(name for name in names if JINJA_MARKUP.search(name))]
    return frozenset([*strings_in(questions), *hooks]), tuple(paths)


def is_template_source(source: str) -> bool:
    texts, paths = template_sources()
    path = source.replace("\\", "/")
    return source in texts or any(path == name or path.endswith("/" + name) for name in paths)


def literal_template(text: str) -> str:
    """A Jinja template that renders `text` as it is: one string literal in Jinja's escapes."""
    escaped = text.encode("unicode_escape").decode("ascii").replace('"', "\\x22")
    return '{{ "' + escaped + '" }}'


class QuotingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["toml_string"] = toml_string
        environment.filters["yaml_string"] = yaml_string
        environment.filters["python_string"] = python_string
        environment.filters["markdown_text"] = markdown_text
        environment.filters["dockerfile_string"] = dockerfile_string
        environment.filters["project_dir"] = project_dir
        environment.globals["project_facts"] = derive
        # The hooks import this package; cookiecutter's `_repo_dir` can be relative to a cwd
        # the hook scripts do not share, so hand them an absolute path.
        environment.globals["bakery_path"] = str(Path(__file__).resolve().parents[1])

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        """Keep answers as the text they are.

        With --no-input, answers given on the command line or in a config file go through the
        same Jinja rendering as cookiecutter.json's defaults: `{{ 7 * 7 }}` in a description
        would become 49, and `{% raw %}` would stop the bake with a traceback. Only the template's
        own sources are templates; any other string cookiecutter renders is an answer, and comes
        out unchanged. (Answers typed at the prompts are never rendered.)
        """
        if name is None and JINJA_MARKUP.search(source) and not is_template_source(source):
            return literal_template(source)
        return source
