"""The default bake renders cleanly and reads like a hand-written project."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from testkit.template import leftovers, text_files


def ruff(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def test_default_bake_has_no_template_leftovers(default_project: Path) -> None:
    assert leftovers(default_project) == []


def test_default_bake_passes_ruff_check(default_project: Path) -> None:
    result = ruff(default_project, "check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_bake_is_ruff_formatted(default_project: Path) -> None:
    result = ruff(default_project, "format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_longest_valid_names_still_pass_ruff(baked: Callable[..., Path]) -> None:
    """Lines that carry the package name must fit the line length at its longest."""
    project = baked(project_name="a" * 40)
    assert project.name == "a" * 40

    for args in (["check"], ["format", "--check"]):
        result = ruff(project, *args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_default_bake_has_no_blank_line_runs(default_project: Path) -> None:
    """Jinja whitespace mistakes show up as three or more blank lines in a row."""
    offenders = [
        str(path.relative_to(default_project))
        for path in text_files(default_project)
        if "\n\n\n\n" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_default_bake_is_the_fastapi_postgresql_service(default_project: Path) -> None:
    package = default_project / "orders_service"
    assert (package / "main.py").is_file()
    assert (package / "migrate.py").is_file()
    assert (default_project / "alembic.ini").is_file()
    assert (default_project / "gunicorn.conf.py").is_file()
