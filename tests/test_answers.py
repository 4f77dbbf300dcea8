"""Bad answers are refused with one clear line, and nothing is left on disk."""

import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment

from hooks.bakery import pins
from hooks.bakery.answers import DISTROLESS_PYTHON, InvalidAnswer, validate
from hooks.bakery.facts import derive
from hooks.bakery.jinja import PROJECT_TEMPLATE, RefusedAnswer
from testkit.render import context_for, landing_files, render
from testkit.template import (
    COOKIECUTTER_JSON,
    TEMPLATE_ROOT,
    bake_in_subprocess,
    choice_options,
    defaults,
)

GOOD = {
    **defaults(),
    "project_name": "Orders Service",
    "project_slug": "orders-service",
    "package_name": "orders_service",
    "description": "Takes orders.",
    "author_name": "Platform Team",
    "author_email": "platform@example.com",
    "kubernetes_version": COOKIECUTTER_JSON["kubernetes_version"],
    "python_version": COOKIECUTTER_JSON["python_version"],
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
    ({"kubernetes_version": "1.035"}, "kubernetes_version", "release from 1.30 to 1.37"),
    ({"kubernetes_version": "1.3"}, "kubernetes_version", "release from 1.30 to 1.37"),
    ({"python_version": "3.10"}, "python_version", "release from 3.11 to 3.13"),
    ({"python_version": "3.14"}, "python_version", "release from 3.11 to 3.13"),
    ({"python_version": "3.13.1"}, "python_version", "release from 3.11 to 3.13"),
    ({"python_version": "python3.13"}, "python_version", "release from 3.11 to 3.13"),
    # Namespaces the cluster owns: the overlays would relabel them "restricted" on apply.
    ({"project_slug": "kube-system"}, "project_slug", "namespace the cluster owns"),
    ({"project_slug": "kube-public"}, "project_slug", "namespace the cluster owns"),
    ({"project_slug": "kube-node-lease"}, "project_slug", "namespace the cluster owns"),
    ({"project_slug": "default"}, "project_slug", "namespace the cluster owns"),
    ({"project_slug": "kube-orders"}, "project_slug", "namespace the cluster owns"),
    ({"project_name": "Kube System"}, "project_slug", "namespace the cluster owns"),
    # The dev overlay's namespace is `<slug>-dev`.
    ({"project_slug": "kube"}, "project_slug", "'kube-dev'"),
    # Device names Windows reserves: no file or directory can have them there.
    ({"project_name": "CON"}, "project_slug", "Windows reserves"),
    ({"project_name": "nul"}, "project_slug", "Windows reserves"),
    ({"project_slug": "com1"}, "project_slug", "Windows reserves"),
    ({"project_slug": "lpt9"}, "project_slug", "Windows reserves"),
    ({"package_name": "aux"}, "package_name", "Windows reserves"),
    ({"package_name": "prn"}, "package_name", "Windows reserves"),
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
    # Combinations the template does not offer, naming what it does.
    (
        {"framework": "django", "database": "mongodb"},
        "database",
        "framework=django supports postgresql or none",
    ),
    (
        {"framework": "django", "websockets": "yes"},
        "framework",
        "websockets=yes supports fastapi",
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

    # The one line is all the user sees: no traceback after it, nothing on stdout.
    assert (result.stdout, result.stderr.splitlines()[:-1]) == ("", []), result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {field}=")
    assert rule in line
    # cookiecutter's own exit status for a failed bake.
    assert result.returncode == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("question", sorted(choice_options()))
def test_a_choice_not_offered_is_refused_before_anything_is_written(
    tmp_path: Path, question: str
) -> None:
    # cookiecutter 2.7.1 checks choices itself, before any template code runs, and its CLI does not
    # catch the ValueError: the traceback above the last line is cookiecutter's to remove.
    result = bake_in_subprocess(tmp_path, **{question: "not-offered"})

    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert f"not-offered provided for choice variable {question}" in last_line
    assert all(repr(option) in last_line for option in choice_options()[question])
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
        ("Annotated Types", "annotated_types"),
    ],
)
def test_bake_refuses_a_name_only_a_transitive_dependency_installs(
    tmp_path: Path, project_name: str, package_name: str
) -> None:
    """Modules the generated code never imports itself would still be shadowed at start-up."""
    result = bake_in_subprocess(tmp_path, project_name=project_name)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: package_name={package_name!r} is invalid: {SHADOWS_DEPENDENCY}; {RENAME}"
    ]
    assert list(tmp_path.iterdir()) == []


def test_bake_refuses_distroless_with_a_python_debian_does_not_ship(tmp_path: Path) -> None:
    """The distroless image's Python is Debian 13's: the venv needs that very interpreter."""
    validate({**GOOD, "image": "distroless", "python_version": DISTROLESS_PYTHON})

    result = bake_in_subprocess(tmp_path, image="distroless", python_version="3.12")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: python_version='3.12' is invalid: "
        f"image=distroless supports {DISTROLESS_PYTHON} (Debian 13's Python)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_the_namespaces_checked_are_the_ones_the_overlays_declare() -> None:
    """A refused slug is refused for every Namespace a bake declares, the dev overlay's too."""
    answers = {**defaults(), "project_name": "Orders Service"}
    overlays = {
        path.split("/")[2]
        for path in landing_files(answers)
        if fnmatch.fnmatch(path, "k8s/overlays/*/namespace.yaml")
    }

    namespaces = derive(context_for(answers)).namespaces

    assert set(namespaces) == overlays
    for overlay, namespace in namespaces.items():
        declared = yaml.safe_load(render(f"k8s/overlays/{overlay}/namespace.yaml", answers))
        kustomization = yaml.safe_load(
            render(f"k8s/overlays/{overlay}/kustomization.yaml", answers)
        )
        assert declared["metadata"]["name"] == kustomization["namespace"] == namespace


def test_answers_are_refused_even_with_hooks_declined(tmp_path: Path) -> None:
    """`--accept-hooks no` skips the hooks, never the validation."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--accept-hooks", "no"]
    command += [str(TEMPLATE_ROOT), "--output-dir", str(tmp_path), "project_slug=kube-system"]

    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 1
    assert result.stderr.startswith("error: project_slug='kube-system' is invalid: ")
    assert list(tmp_path.iterdir()) == []


def test_the_project_directory_is_named_only_once_every_answer_passes() -> None:
    """cookiecutter renders this name before it creates anything: the check runs there."""
    environment = StrictEnvironment(context={"cookiecutter": COOKIECUTTER_JSON})
    name = environment.from_string(PROJECT_TEMPLATE)

    assert name.render(cookiecutter=GOOD) == "orders-service"
    with pytest.raises(RefusedAnswer) as raised:
        name.render(cookiecutter={**GOOD, "project_slug": ".."})
    assert raised.value.field == "project_slug"
    assert raised.value.exit_code == 1
