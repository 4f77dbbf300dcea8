"""Free text with quotes, markup and odd characters comes out intact in every format it lands in.

Each file the text reaches is parsed as its format (TOML, YAML, Python, Dockerfile, Markdown)
and the text read back must be the answer as given. Answers are never evaluated as Jinja.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment
from markdown_it import MarkdownIt

from hooks.bakery.jinja import (
    dockerfile_string,
    markdown_text,
    python_string,
    toml_string,
    yaml_string,
)
from testkit.matrix import ruff_problems, yaml_problems
from testkit.render import context_for
from testkit.template import COOKIECUTTER_JSON, bake_in_subprocess, supported_combinations

HOSTILE_TEXTS = [
    "Quotes \"double\" and 'single', '''triple''' and \"\"\"triple\"\"\"",
    "Colons: everywhere: a: b",
    "# not a comment, #1 and a trailing #",
    "Back\\slash, a trailing one \\",
    "Jinja {{ 7 * 7 }} and {% raw %} and {# comment #} and {{ cookiecutter.project_slug }}",
    "- a list item?",
    "* a star",
    "& an anchor",
    "! a tag",
    "% a directive",
    "@ reserved",
    "> a quote",
    "| a pipe",
    "? a key",
    "1. an ordered item",
    "---",
    "null",
    "yes",
    "0x1F",
    "Ünïcödé — 日本語のサービス ✓ 🚀",
    "  leading and trailing spaces  ",
    "Shell $HOME ${HOME} $(id) `id`",
    "HTML <b>bold</b> &amp; <!-- comment -->",
    "Markdown *em* _em_ [link](https://example.com) ![img](x.png) ~~gone~~ $x$",
]


def ids(texts: list[str]) -> list[str]:
    return [re.sub(r"\W+", "-", text).strip("-")[:30] or "symbols" for text in texts]


def unquote_dockerfile_word(word: str) -> str:
    """A double-quoted Dockerfile word's value: the escape character keeps `"`, `$` and itself."""
    assert word.startswith('"')
    assert word.endswith('"')
    return re.sub(r'\\(["$\\])', r"\1", word[1:-1])


def markdown_inline_text(source: str) -> str:
    """The text a one-line Markdown block renders to; markup other than plain text fails."""
    tokens = MarkdownIt("commonmark").parse(source)
    [inline] = [token for token in tokens if token.type == "inline"]
    markup = [(child.type, child.content) for child in inline.children if child.type != "text"]
    assert markup == []
    return "".join(child.content for child in inline.children)


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=ids(HOSTILE_TEXTS))
def test_each_quoting_filter_round_trips_through_its_formats_parser(text: str) -> None:
    assert tomllib.loads(f"value = {toml_string(text)}")["value"] == text
    assert yaml.safe_load(f"value: {yaml_string(text)}")["value"] == text
    assert yaml.safe_load(f"- {yaml_string(text)}") == [text]
    assert ast.literal_eval(python_string(text)) == text
    assert unquote_dockerfile_word(dockerfile_string(text)) == text
    assert markdown_inline_text(f"# {markdown_text(text)}\n") == text
    assert markdown_inline_text(f"{markdown_text(text)}\n") == text


def cookiecutter_environment() -> StrictEnvironment:
    """The environment cookiecutter renders answers in, with the template's extensions."""
    return StrictEnvironment(context={"cookiecutter": COOKIECUTTER_JSON})


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=ids(HOSTILE_TEXTS))
def test_an_answer_renders_as_the_text_it_is(text: str) -> None:
    environment = cookiecutter_environment()

    assert environment.from_string(text).render(cookiecutter={}) == text


def test_the_templates_own_jinja_still_renders() -> None:
    environment = cookiecutter_environment()
    slug = environment.from_string(COOKIECUTTER_JSON["project_slug"])

    assert slug.render(cookiecutter={"project_name": "Billing API"}) == "billing-api"


def test_jinja_given_on_the_command_line_is_kept_as_written(tmp_path: Path) -> None:
    """cookiecutter renders --no-input answers as Jinja: 49 for the first, a crash for the rest."""
    description = "{{ 7 * 7 }} {% raw %} {# kept #}"

    result = bake_in_subprocess(tmp_path, description=description, author_name="{{ oops }}")

    assert result.returncode == 0, result.stderr
    pyproject = tomllib.loads((tmp_path / "orders-service" / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == description
    assert pyproject["project"]["authors"][0]["name"] == "{{ oops }}"


HOSTILE_ANSWERS = {
    "project_name": '  "Ördërs" & Co: #1 {{ x }} {% y %} — Service  ',
    "description": (
        "- \"Quoted\" & 'single': #hash \\ back {{ 7 * 7 }} {% raw %} {# c #} * ! % @ > | ? "
        "Ünïcödé 日本 $HOME `id` <b>x</b>  "
    ),
    "author_name": '& O\'Brien "Ops" ! % @ #team {{ author }}',
    "author_email": "o.brien+ops@example.com",
}


def database_pairs() -> list[dict[str, str]]:
    pairs = dict.fromkeys((c["framework"], c["database"]) for c in supported_combinations())
    return [{"framework": framework, "database": database} for framework, database in pairs]


@pytest.fixture(scope="module")
def hostile_projects(baked: Callable[..., Path]) -> list[Path]:
    return [baked(**HOSTILE_ANSWERS, **pair) for pair in database_pairs()]


def test_hostile_names_still_make_a_valid_slug_and_package() -> None:
    context = context_for(HOSTILE_ANSWERS)

    assert context["project_slug"] == "orders-co-1-x-y-service"
    assert context["package_name"] == "orders_co_1_x_y_service"


def test_free_text_comes_back_intact_from_every_format(hostile_projects: list[Path]) -> None:
    name, description = HOSTILE_ANSWERS["project_name"], HOSTILE_ANSWERS["description"]
    author = f"{HOSTILE_ANSWERS['author_name']} <{HOSTILE_ANSWERS['author_email']}>"
    for project in hostile_projects:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
        assert pyproject["project"]["description"] == description
        assert pyproject["project"]["authors"] == [
            {"name": HOSTILE_ANSWERS["author_name"], "email": HOSTILE_ANSWERS["author_email"]}
        ]

        labels = dockerfile_labels((project / "Dockerfile").read_text(encoding="utf-8"))
        assert labels["org.opencontainers.image.description"] == description
        assert labels["org.opencontainers.image.authors"] == author

        readme = (project / "README.md").read_text(encoding="utf-8").split("\n\n")
        assert markdown_inline_text(readme[0]) == name
        assert markdown_inline_text(readme[1]) == description


def dockerfile_labels(dockerfile: str) -> dict[str, str]:
    """The LABEL instruction's keys and values, its line continuations joined."""
    instruction = re.search(r"^LABEL (.*?[^\\])$", dockerfile, re.MULTILINE | re.DOTALL)
    assert instruction is not None
    words = re.findall(r'([\w.-]+)=("(?:[^"\\]|\\.)*")', instruction.group(1))
    return {key: unquote_dockerfile_word(value) for key, value in words}


def test_every_yaml_toml_and_python_file_still_parses_and_lints(
    hostile_projects: list[Path],
) -> None:
    for project in hostile_projects:
        for path in project.rglob("*"):
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            if path.suffix in {".yaml", ".yml"}:
                list(yaml.safe_load_all(text))
            elif path.suffix == ".toml":
                tomllib.loads(text)
            elif path.suffix == ".py":
                ast.parse(text, filename=str(path))
    found = {**ruff_problems(hostile_projects), **yaml_problems(hostile_projects)}
    assert {str(project): problems for project, problems in found.items() if problems} == {}


def test_python_literals_carry_the_derived_names(hostile_projects: list[Path]) -> None:
    for project in hostile_projects:
        config = ast.parse((project / "gunicorn.conf.py").read_text(encoding="utf-8"))
        [wsgi_app] = [
            node.value.value
            for node in config.body
            if isinstance(node, ast.Assign)
            and [target.id for target in node.targets if isinstance(target, ast.Name)]
            == ["wsgi_app"]
            and isinstance(node.value, ast.Constant)
        ]
        assert wsgi_app.startswith("orders_co_1_x_y_service.")
        assert (project / "orders_co_1_x_y_service").is_dir()
