"""Check many baked projects at once: what tests/test_matrix.py asserts and what
benchmarks/matrix_time.py times.

Bakes are the expensive part and run as a user's would (hooks included: the post-generation hook
refuses a project whose manifests fail its own validator). The checks are batched: one ruff run
over every project (ruff reads each project's own pyproject.toml), and yamllint once per distinct
file, since most files are the same in many combinations.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from yamllint import linter
from yamllint.config import YamlLintConfig

from testkit.template import answers_key, leftovers, text_files

Bake = Callable[[Mapping[str, str]], Path]


def blank_line_runs(project: Path) -> list[str]:
    """Jinja whitespace mistakes show up as three or more blank lines in a row."""
    return [
        f"{path.relative_to(project)}: blank lines"
        for path in text_files(project)
        if "\n\n\n\n" in path.read_text(encoding="utf-8")
    ]


def empty_folders(project: Path) -> list[str]:
    """A folder left empty by the layout (a condition folder's skeleton) is clutter to a user."""
    return [
        f"{path.relative_to(project)}: empty folder"
        for path in sorted(project.rglob("*"))
        if path.is_dir() and not any(path.iterdir())
    ]


# Template history and other variants, which a generated project must not speak of.
HISTORY = re.compile(
    r"\bthe template\b|(?<!pod )\btemplate's\b|benchmark|\bstand-in for\b"
    r"|\bas the \w+ versions?\b|\bthe (?:PostgreSQL|MongoDB|Django|FastAPI|database) versions?\b",
    re.IGNORECASE,
)
# Names a project may mention only when it uses them.
OTHER_VARIANTS = {
    ("database", "none"): re.compile(r"PostgreSQL|MongoDB"),
    ("framework", "fastapi"): re.compile(r"Django"),
    ("framework", "django"): re.compile(r"FastAPI"),
}


def foreign_mentions(project: Path, answers: Mapping[str, str]) -> list[str]:
    """Lines that tell template history or name a variant the user did not choose."""
    patterns = [HISTORY] + [
        pattern for (name, value), pattern in OTHER_VARIANTS.items() if answers.get(name) == value
    ]
    found = []
    for path in text_files(project):
        if path.name.endswith(".lock"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(pattern.search(line) for pattern in patterns):
                found.append(f"{path.relative_to(project)}:{number}: {line.strip()}")
    return found


def ruff_problems(projects: Iterable[Path]) -> dict[Path, list[str]]:
    """`ruff check` and `ruff format --check`, each run once over all the projects."""
    projects = list(projects)
    root = Path(os.path.commonpath(projects))
    found: dict[Path, list[str]] = defaultdict(list)
    for args in (["check", "--output-format", "concise"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", *map(str, projects)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode == 0:
            continue
        # ruff names files relative to its working directory.
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        for project in projects:
            prefix = project.relative_to(root).as_posix() + "/"
            mine = [line for line in lines if prefix == "./" or prefix in line]
            found[project] += [f"ruff {args[0]}: {line}" for line in mine]
        if not any(found.values()):
            raise RuntimeError(f"ruff failed without naming a file: {result.stderr}")
    return found


def yaml_problems(projects: Iterable[Path]) -> dict[Path, list[str]]:
    """yamllint --strict with each project's .yamllint.yaml, as `make lint` runs it."""
    cache: dict[tuple[str, str], list[str]] = {}
    found: dict[Path, list[str]] = defaultdict(list)
    for project in projects:
        config_text = (project / ".yamllint.yaml").read_text(encoding="utf-8")
        config = YamlLintConfig(config_text)
        for path in text_files(project):
            relative = path.relative_to(project).as_posix()
            if not config.is_yaml_file(relative) or config.is_file_ignored(relative):
                continue
            text = path.read_text(encoding="utf-8")
            if (config_text, text) not in cache:
                cache[config_text, text] = [
                    f"line {problem.line}: {problem.desc} ({problem.rule})"
                    for problem in linter.run(text, config, relative)
                ]
            found[project] += [f"yamllint {relative}: {line}" for line in cache[config_text, text]]
    return found


def check_combinations(
    combinations: Iterable[Mapping[str, str]], bake: Bake
) -> dict[str, list[str]]:
    """Every problem of every combination's bake, by answers_key; an empty list when clean."""
    combinations = list(combinations)
    projects = {answers_key(answers): bake(answers) for answers in combinations}
    problems = {}
    for answers in combinations:
        project = projects[answers_key(answers)]
        problems[answers_key(answers)] = (
            leftovers(project)
            + blank_line_runs(project)
            + empty_folders(project)
            + foreign_mentions(project, answers)
        )
    for found in (ruff_problems(projects.values()), yaml_problems(projects.values())):
        for key, project in projects.items():
            problems[key] += found.get(project, [])
    return problems
