"""Check every supported combination at once: what tests/test_matrix.py asserts and what
benchmarks/matrix_time.py times.

The combinations are rendered in memory (testkit.render), and most of their files are the same in
many of them: each distinct file is checked once (leftovers, blank-line runs, foreign mentions,
yamllint), ruff runs once over every distinct set of Python files, and the project's manifest
validator runs once per distinct manifest set, in a real bake (the post-generation hook runs it,
as for a user) that must also match the in-memory rendering byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from cookiecutter import generate, utils
from cookiecutter.main import cookiecutter
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from yamllint import linter
from yamllint.config import YamlLintConfig

from testkit.render import GENERATED_PER_BAKE, RenderedProject, render_project
from testkit.template import TEMPLATE_ROOT, answers_key, leftover_lines, text_files

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
    ("autoscaling", "hpa"): re.compile(r"scaledobject\.yaml|keda-hpa"),
    ("autoscaling", "keda"): re.compile(r"hpa\.yaml"),
    ("worker", "none"): re.compile(r"RabbitMQ|Kafka|FastStream|[Oo]utbox|BROKER_URL"),
    ("worker", "rabbitmq"): re.compile(r"Kafka|kafka"),
    ("worker", "kafka"): re.compile(r"RabbitMQ|rabbitmq|AMQP|amqp"),
    ("websockets", "no"): re.compile(r"WebSocket|[Ww]ebsocket|Redis|redis"),
    ("image", "slim"): re.compile(r"[Dd]istroless"),
    ("image", "distroless"): re.compile(r"python:3\.\d+-slim|useradd|BASE_IMAGE"),
    ("exposure", "none"): re.compile(r"HTTPRoute|Gateway|ingress-nginx|IngressClass|the Ingress"),
    ("exposure", "ingress"): re.compile(r"HTTPRoute|Gateway"),
    ("exposure", "gateway"): re.compile(r"ingress-nginx|IngressClass|ingress\.yaml|the Ingress"),
}


def foreign_mentions(project: Path, answers: Mapping[str, str]) -> list[str]:
    """Lines that tell template history or name a variant the user did not choose."""
    patterns = variant_patterns(answers)
    found = []
    for path in text_files(project):
        if not path.name.endswith(".lock"):
            relative = path.relative_to(project).as_posix()
            found += mention_lines(relative, path.read_text(encoding="utf-8"), patterns)
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


# What the manifest validator (k8s/validate.py, k8s/checks.py) reads: k8s/ and these files.
VALIDATOR_INPUTS = (".yamllint.yaml", "Dockerfile", "gunicorn.conf.py")
# What ruff reads besides the Python files: its configuration and the ignore files it honours.
RUFF_INPUTS = ("pyproject.toml", "ruff.toml", ".ruff.toml", ".gitignore", ".ignore")
PYTHON_SUFFIXES = (".py", ".pyi")
# The validator's verdict when it built and checked the overlays (not only the sources).
VALIDATED = re.compile(r"^k8s: overlays .+ valid", re.MULTILINE)
# Then each overlay's requests and monthly cost (k8s/cost.py): `cost: prod requests ...`.
COSTED = re.compile(r"^cost: (\S+) requests .+ a month on demand", re.MULTILINE)


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def masked(relative: str, content: bytes) -> bytes:
    """A file the hook writes with fresh secrets on every bake, as its variable names only."""
    if relative not in GENERATED_PER_BAKE:
        return content
    return b"\n".join(line.split(b"=", 1)[0] for line in content.splitlines() if b"=" in line)


def tree_key(files: Mapping[str, bytes]) -> str:
    hashes = sorted((path, digest(masked(path, content))) for path, content in files.items())
    return digest(repr(hashes).encode())


def manifest_inputs(project: RenderedProject) -> dict[str, bytes]:
    inputs = {
        path: content
        for path, content in project.files.items()
        if path.startswith("k8s/") or path in VALIDATOR_INPUTS
    }
    if "Dockerfile" in inputs:
        inputs["Dockerfile"] = validated_dockerfile(inputs["Dockerfile"])
    return inputs


def validated_dockerfile(content: bytes) -> bytes:
    """What the validator reads of a Dockerfile: each stage's USER (checks.image_user). Images
    that differ only in their base and build steps then share one manifest set."""
    kept = []
    for line in content.splitlines():
        instruction = line.strip().split(b" ", 1)[0].upper()
        if instruction == b"FROM":
            kept.append(b"FROM")
        elif instruction == b"USER":
            kept.append(line.strip())
    return b"\n".join(kept)


def python_inputs(project: RenderedProject) -> dict[str, bytes]:
    return {
        path: content
        for path, content in project.files.items()
        if path.endswith(PYTHON_SUFFIXES) or path in RUFF_INPUTS
    }


@dataclass
class Matrix:
    """Every supported combination, rendered; grouped by what the slow checks read."""

    combinations: list[dict[str, str]]
    rendered: dict[str, RenderedProject]

    @functools.cached_property
    def distinct_files(self) -> int:
        return len(
            {
                (path, digest(content))
                for project in self.rendered.values()
                for path, content in project.files.items()
            }
        )

    def groups(self, inputs: Callable[[RenderedProject], Mapping[str, bytes]]) -> list[list[str]]:
        """The combinations' keys, grouped by identical inputs (first combination first)."""
        found: dict[str, list[str]] = defaultdict(list)
        for key, project in self.rendered.items():
            found[tree_key(inputs(project))].append(key)
        return list(found.values())

    @functools.cached_property
    def manifest_sets(self) -> list[list[str]]:
        return self.groups(manifest_inputs)

    @functools.cached_property
    def python_sets(self) -> list[list[str]]:
        return self.groups(python_inputs)

    def answers(self, key: str) -> dict[str, str]:
        return next(a for a in self.combinations if answers_key(a) == key)


def render_matrix(combinations: Iterable[Mapping[str, str]]) -> Matrix:
    combinations = [dict(answers) for answers in combinations]
    rendered = {answers_key(answers): render_project(answers) for answers in combinations}
    return Matrix(combinations, rendered)


def file_problems(matrix: Matrix) -> dict[str, list[str]]:
    """Every problem the per-file checks and ruff find, by answers_key; empty lists when clean.

    Each check runs once per distinct input: a file's path and content, plus what else it reads
    (the variants a combination must not name, the project's yamllint configuration).
    """
    cache: dict[tuple[object, ...], list[str]] = {}

    def once(check: Callable[..., list[str]], key: tuple[object, ...], *args: object) -> list[str]:
        if (check, *key) not in cache:
            cache[check, *key] = check(*args)
        return cache[check, *key]

    problems: dict[str, list[str]] = {}
    for answers in matrix.combinations:
        key = answers_key(answers)
        project = matrix.rendered[key]
        patterns = variant_patterns(answers)
        config_text = project.files[".yamllint.yaml"].decode("utf-8")
        found = [f"{folder}: empty folder" for folder in project.empty_folders]
        for relative, content in project.files.items():
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                continue
            same = (relative, digest(content))
            found += once(leftover_lines, same, relative, text)
            found += once(blank_lines, same, relative, text)
            if not relative.endswith(".lock"):
                named = tuple(pattern.pattern for pattern in patterns)
                found += once(mention_lines, (*same, named), relative, text, patterns)
            found += once(yamllint_lines, (*same, config_text), relative, text, config_text)
        problems[key] = found
    for key, found in python_set_problems(matrix).items():
        problems[key] += found
    return problems


def python_set_problems(matrix: Matrix) -> dict[str, list[str]]:
    """ruff check and ruff format --check, one run each over every distinct Python file set."""
    with tempfile.TemporaryDirectory(prefix="matrix-ruff-") as scratch:
        folders = {}
        for number, keys in enumerate(matrix.python_sets):
            # Fixed width: no folder's name is a prefix of another's in ruff's output.
            folder = Path(scratch, f"set{number:04d}")
            for relative, content in python_inputs(matrix.rendered[keys[0]]).items():
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_bytes(content)
            folders[folder] = keys
        found = ruff_problems(folders)
        return {
            key: [line.replace(f"{folder.name}/", "", 1) for line in found.get(folder, [])]
            for folder, keys in folders.items()
            for key in keys
        }


def blank_lines(relative: str, text: str) -> list[str]:
    return [f"{relative}: blank lines"] if "\n\n\n\n" in text else []


def variant_patterns(answers: Mapping[str, str]) -> list[re.Pattern[str]]:
    return [HISTORY] + [
        pattern for (name, value), pattern in OTHER_VARIANTS.items() if answers.get(name) == value
    ]


@functools.cache
def names_anywhere(pattern: re.Pattern[str], text: str) -> bool:
    """Once per pattern and distinct text: most texts name nothing, and are in many projects."""
    return pattern.search(text) is not None


def mention_lines(relative: str, text: str, patterns: list[re.Pattern[str]]) -> list[str]:
    found = [pattern for pattern in patterns if names_anywhere(pattern, text)]
    return [
        f"{relative}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), 1)
        if any(pattern.search(line) for pattern in found)
    ]


@functools.cache
def yamllint_config(config_text: str) -> YamlLintConfig:
    return YamlLintConfig(config_text)


def yamllint_lines(relative: str, text: str, config_text: str) -> list[str]:
    """yamllint --strict with the project's .yamllint.yaml, as `make lint` runs it."""
    config = yamllint_config(config_text)
    if not config.is_yaml_file(relative) or config.is_file_ignored(relative):
        return []
    return [
        f"yamllint {relative}: line {problem.line}: {problem.desc} ({problem.rule})"
        for problem in linter.run(text, config, relative)
    ]


class CompiledTemplates(BytecodeCache):
    """Jinja's compiled templates, kept between the bakes of one process. cookiecutter makes a
    new environment per bake, which compiles every template again (about a second per bake);
    Jinja keys each entry by the template's name and a checksum of its source."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if (code := self.compiled.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = CompiledTemplates()


def environment_with_compiled_templates(context: dict[str, Any]) -> Any:
    environment = utils.create_env_with_context(context)
    environment.bytecode_cache = COMPILED_TEMPLATES
    return environment


def bake_in_process(answers: Mapping[str, str], scratch: Path) -> Path:
    """A real bake, hooks included, through cookiecutter's API: as the CLI bakes, without a new
    interpreter, and without compiling the same templates again for every bake. Its output goes
    to scratch/out, its replay file to scratch/replay."""
    scratch.mkdir(parents=True, exist_ok=True)
    config = scratch / "cookiecutter.yaml"
    config.write_text(
        f"cookiecutters_dir: {scratch / 'cookiecutters'}\nreplay_dir: {scratch / 'replay'}\n"
    )
    output = scratch / "out"
    output.mkdir(parents=True, exist_ok=True)
    compiled = environment_with_compiled_templates
    with mock.patch.object(generate, "create_env_with_context", compiled):
        return Path(
            cookiecutter(
                str(TEMPLATE_ROOT),
                no_input=True,
                extra_context=dict(answers),
                output_dir=str(output),
                config_file=str(config),
            )
        )


def bake_differences(project: Path, rendered: RenderedProject) -> list[str]:
    """How a real bake differs from its in-memory rendering (the secrets aside); [] when alike."""
    on_disk = {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in project.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    empty = sorted(
        path.relative_to(project).as_posix()
        for path in project.rglob("*")
        if path.is_dir() and not any(path.iterdir())
    )
    found = [f"{path}: only in the bake" for path in sorted(on_disk.keys() - rendered.files.keys())]
    found += [f"{path}: not in the bake" for path in sorted(rendered.files.keys() - on_disk.keys())]
    found += [
        f"{path}: differs"
        for path in sorted(on_disk.keys() & rendered.files.keys())
        if masked(path, on_disk[path]) != masked(path, rendered.files[path])
    ]
    if empty != list(rendered.empty_folders):
        found.append(f"empty folders: bake {empty}, rendering {list(rendered.empty_folders)}")
    if project.name != rendered.name:
        found.append(f"project folder: bake {project.name}, rendering {rendered.name}")
    return found
