"""What the template offers, read from cookiecutter.json itself, and how to bake it."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from hooks.bakery.answers import combination_problems

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON = json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text())

# Text the rendered project must never contain: unrendered Jinja or cookiecutter variables.
LEFTOVER_MARKERS = ("{{", "{%", "cookiecutter.")
# GitHub Actions expressions, `${{ github.sha }}`, are meant to be in the rendered workflows.
GITHUB_EXPRESSION = re.compile(r"\$\{\{[^{}]*\}\}")


def choice_options() -> dict[str, list[str]]:
    """Every multiple-choice question and its answers, in cookiecutter.json's order."""
    return {
        name: values
        for name, values in COOKIECUTTER_JSON.items()
        if not name.startswith("_") and isinstance(values, list)
    }


def defaults() -> dict[str, str]:
    return {name: values[0] for name, values in choice_options().items()}


def all_combinations() -> Iterator[dict[str, str]]:
    options = choice_options()
    for values in itertools.product(*options.values()):
        yield dict(zip(options, values, strict=True))


def refusal(answers: Mapping[str, str]) -> str | None:
    """Why the answer check refuses this combination, or None when it is supported."""
    problem = next(combination_problems(answers), None)
    return None if problem is None else str(problem)


def supported_combinations() -> list[dict[str, str]]:
    return [answers for answers in all_combinations() if refusal(answers) is None]


def unsupported_combinations() -> list[dict[str, str]]:
    return [answers for answers in all_combinations() if refusal(answers) is not None]


def bake_in_subprocess(output_dir: Path, **answers: str) -> subprocess.CompletedProcess[str]:
    """Render as a user would, through the CLI, to see exactly what they see."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE_ROOT)]
    command += ["--output-dir", str(output_dir)]
    command += [f"{name}={value}" for name, value in answers.items()]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def text_files(project: Path) -> Iterator[Path]:
    for path in sorted(project.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            yield path


def leftovers(project: Path) -> list[str]:
    found = []
    for path in text_files(project):
        relative = path.relative_to(project).as_posix()
        found += leftover_lines(relative, path.read_text(encoding="utf-8"))
    return found


def leftover_lines(relative: str, text: str) -> list[str]:
    """Unrendered Jinja in one file of a project (`relative` to its root), or in its name."""
    workflow = relative.split("/")[:2] == [".github", "workflows"]
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        checked = GITHUB_EXPRESSION.sub("", line) if workflow else line
        found += [f"{relative}:{number}: {line.strip()}" for m in LEFTOVER_MARKERS if m in checked]
    name = relative.rsplit("/", 1)[-1]
    found += [f"{relative}: name" for marker in LEFTOVER_MARKERS if marker in name]
    return found


def answers_key(answers: Mapping[str, str]) -> str:
    return "-".join(f"{name}={value}" for name, value in sorted(answers.items()))


def make(
    project: Path, *args: str, env: Mapping[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run one of the generated project's make targets, as its user would."""
    return subprocess.run(
        ["make", *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
