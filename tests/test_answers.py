"""Bad answers are refused with one clear line, and nothing is left on disk."""

import json
from pathlib import Path

import pytest

from hooks.bakery import pins
from hooks.bakery.answers import InvalidAnswer, validate
from testkit.render import context_for
from testkit.template import COOKIECUTTER_JSON, bake_in_subprocess, defaults

GOOD = {
    **defaults(),
    "project_name": "Orders Service",
    "project_slug": "orders-service",
    "package_name": "orders_service",
    "description": "Takes orders.",
    "author_name": "Platform Team",
    "author_email": "platform@example.com",
    "kubernetes_version": COOKIECUTTER_JSON["kubernetes_version"],
}

SHADOWS_DEPENDENCY = "shadows a module the generated project's dependencies install"
RENAME = "choose another project_name or set package_name"
RECORDED_MODULES = sorted(
    {
        module
        for modules in json.loads(pins.MODULES_FILE.read_text(encoding="utf-8"))["modules"].values()
        for module in modules
    }
)

BAD_ANSWERS = [
    # (answers, field, words the message must contain)
    ({"project_slug": "Orders_Service"}, "project_slug", "DNS-1123 label"),
    ({"project_slug": "orders-"}, "project_slug", "ending with a letter or digit"),
    ({"project_slug": "1orders"}, "project_slug", "starting with a letter"),
    ({"project_slug": "o" * 41}, "project_slug", "at most 40 characters"),
    ({"project_name": "!!!"}, "project_slug", "is empty"),
    ({"package_name": "orders-service"}, "package_name", "Python identifier"),
    ({"package_name": "9orders"}, "package_name", "Python identifier"),
    ({"package_name": "class"}, "package_name", "Python keyword"),
    ({"package_name": "match"}, "package_name", "Python keyword"),
    ({"package_name": "fastapi"}, "package_name", SHADOWS_DEPENDENCY),
    ({"package_name": "alembic"}, "package_name", SHADOWS_DEPENDENCY),
    ({"package_name": "test"}, "package_name", "uses for its own files"),
    ({"package_name": "asyncio"}, "package_name", "standard-library module"),
    ({"package_name": "logging"}, "package_name", "standard-library module"),
    ({"package_name": "tests"}, "package_name", "uses for its own files"),
    ({"author_email": "not-an-email"}, "author_email", "name@example.com"),
    ({"kubernetes_version": "1.29"}, "kubernetes_version", "release from 1.30 to 1.37"),
    ({"kubernetes_version": "v1.35"}, "kubernetes_version", "release from 1.30 to 1.37"),
    ({"description": "   "}, "description", "must not be empty"),
    ({"author_name": "Line\tbreak"}, "author_name", "without control characters"),
    ({"description": "Two\nlines"}, "description", "without control characters"),
    ({"package_name": "o" * 41}, "package_name", "at most 40 characters"),
    # Names derived from project_name, as most users give only that.
    ({"project_name": "A" * 300}, "project_slug", "at most 40 characters"),
    ({"project_name": "A" * 300}, "project_slug", "shorten project_name or set project_slug"),
    ({"project_name": "🚀 ✨"}, "project_slug", "is empty"),
    ({"project_name": "42 Orders"}, "project_slug", "starting with a letter"),
    ({"project_name": "Logging"}, "package_name", "standard-library module"),
    ({"project_name": "JSON"}, "package_name", "standard-library module"),
    ({"project_name": "Class"}, "package_name", "Python keyword"),
    ({"project_name": "FastAPI"}, "package_name", SHADOWS_DEPENDENCY),
    ({"project_name": "PyMongo"}, "package_name", SHADOWS_DEPENDENCY),
    ({"project_name": "BSON"}, "package_name", SHADOWS_DEPENDENCY),
    ({"project_name": "Tests"}, "package_name", RENAME),
    # The one combination the template does not offer, naming what it does.
    (
        {"framework": "django", "database": "mongodb"},
        "database",
        "framework=django supports postgresql or none",
    ),
]


@pytest.mark.parametrize(("changes", "field", "rule"), BAD_ANSWERS)
def test_validate_names_field_value_and_rule(changes: dict, field: str, rule: str) -> None:
    # The slug and package name from cookiecutter's own derivation when the project name changes.
    answers = context_for(changes) if "project_name" in changes else {**GOOD, **changes}

    with pytest.raises(InvalidAnswer) as raised:
        validate(answers)

    assert raised.value.field == field
    assert rule in str(raised.value)
    assert repr(answers[field]) in str(raised.value)


def test_good_answers_pass() -> None:
    validate(GOOD)


@pytest.mark.parametrize(("changes", "field", "rule"), BAD_ANSWERS)
def test_bake_refuses_bad_answer_and_leaves_nothing(
    tmp_path: Path, changes: dict, field: str, rule: str
) -> None:
    result = bake_in_subprocess(tmp_path, **changes)

    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if "error: " in line]
    assert len(error_lines) == 1, result.stderr
    assert f"error: {field}=" in error_lines[0]
    assert rule in error_lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module", RECORDED_MODULES)
def test_every_module_the_shipped_locks_install_is_refused_as_package_name(module: str) -> None:
    with pytest.raises(InvalidAnswer) as raised:
        validate({**GOOD, "package_name": module})

    assert raised.value.field == "package_name"
    # A dependency's module named like a standard-library one is refused as the latter.
    assert "shadows" in str(raised.value)


@pytest.mark.parametrize(
    ("project_name", "package_name"),
    [
        ("Click", "click"),
        ("greenlet", "greenlet"),
        ("Typing Extensions", "typing_extensions"),
        ("Pydantic Core", "pydantic_core"),
        ("Python ipware", "python_ipware"),
    ],
)
def test_bake_refuses_a_name_only_a_transitive_dependency_installs(
    tmp_path: Path, project_name: str, package_name: str
) -> None:
    """Modules the generated code never imports itself would still be shadowed at start-up."""
    result = bake_in_subprocess(tmp_path, project_name=project_name)

    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if "error: " in line]
    assert error_lines == [
        f"error: package_name={package_name!r} is invalid: {SHADOWS_DEPENDENCY}; {RENAME}"
    ]
    assert list(tmp_path.iterdir()) == []
