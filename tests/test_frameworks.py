"""Every framework's bake is its own idiomatic project (tests/test_matrix.py checks every
combination for leftovers and lint)."""

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.template import choice_options, supported_combinations

FRAMEWORKS = choice_options()["framework"]
DATABASE_PAIRS = list(
    dict.fromkeys((c["framework"], c["database"]) for c in supported_combinations())
)
IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", re.MULTILINE)


def ruff(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def imported_modules(project: Path) -> set[str]:
    return {
        module
        for path in project.rglob("*.py")
        for module in IMPORT.findall(path.read_text(encoding="utf-8"))
    }


def declared_modules(project: Path) -> set[str]:
    """Top-level module names of the declared dependencies, where they match the package name."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = pyproject["project"]["dependencies"] + pyproject["dependency-groups"]["dev"]
    names = (re.match(r"[A-Za-z0-9_.-]+", requirement)[0] for requirement in requirements)
    return {name.lower().replace("-", "_") for name in names}


def test_longest_valid_names_still_pass_ruff_in_django(baked: Callable[..., Path]) -> None:
    """Lines that carry the package name must fit the line length at its longest."""
    project = baked(framework="django", project_name="a" * 40)

    for args in (["check"], ["format", "--check"]):
        result = ruff(project, *args)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("framework", "database"), DATABASE_PAIRS)
def test_a_bake_imports_nothing_that_only_another_combination_declares(
    baked: Callable[..., Path], framework: str, database: str
) -> None:
    """Without a database, no database driver or ORM is declared, and none is imported."""
    project = baked(framework=framework, database=database)
    others = set().union(
        *(declared_modules(baked(framework=f, database=d)) for f, d in DATABASE_PAIRS)
    )
    foreign = others - declared_modules(project)

    assert imported_modules(project) & foreign == set()


def test_django_bake_is_a_django_project(baked: Callable[..., Path]) -> None:
    project = baked(framework="django")
    package = project / "orders_service"

    assert (project / "manage.py").is_file()
    assert "INSTALLED_APPS" in (package / "settings.py").read_text()
    assert (package / "core" / "management" / "commands" / "migrate_locked.py").is_file()
    assert not (project / "alembic.ini").exists()
    assert not (package / "main.py").exists()
    assert (
        'wsgi_app = "orders_service.asgi:application"' in (project / "gunicorn.conf.py").read_text()
    )


def test_each_django_bake_has_its_own_git_ignored_secret_key(
    baked: Callable[..., Path], tmp_path: Path
) -> None:
    projects = [baked(framework="django"), baked(framework="django", project_name="Billing")]

    keys = [
        line.removeprefix("SECRET_KEY=")
        for project in projects
        for line in (project / ".env").read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    ]
    assert len(keys) == 2
    assert keys[0] != keys[1]
    # The key lives in .env only, and git ignores that file.
    elsewhere = [
        path
        for path in projects[0].rglob("*")
        if path.is_file() and path.name != ".env" and keys[0] in path.read_text(errors="ignore")
    ]
    assert elsewhere == []
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text((projects[0] / ".gitignore").read_text())
    ignored = subprocess.run(
        ["git", "-C", str(tmp_path), "check-ignore", "-q", ".env"], check=False
    )
    assert ignored.returncode == 0


# Distributions that only a database brings in, drivers and ORMs with what they pull in.
DATABASE_DISTRIBUTIONS = {
    "alembic",
    "asyncpg",
    "dnspython",
    "psycopg",
    "psycopg-binary",
    "pymongo",
    "sqlalchemy",
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_without_a_database_no_database_library_is_declared_or_locked(
    baked: Callable[..., Path], framework: str
) -> None:
    project = baked(framework=framework, database="none")
    locked = {
        line.split("==")[0].lower()
        for lock in ("requirements.lock", "requirements-dev.lock")
        for line in (project / lock).read_text().splitlines()
        if "==" in line
    }

    assert declared_modules(project) & DATABASE_DISTRIBUTIONS == set()
    assert locked & DATABASE_DISTRIBUTIONS == set()
