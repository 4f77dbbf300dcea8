"""Install the rendered project into a fresh virtual environment and run its own tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.generated


def uv(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "uv", *args], cwd=cwd, check=True, timeout=600)


def test_default_project_suite_passes_against_real_postgres(
    default_project: Path, postgres_url: str, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    uv("venv", "--quiet", "--python", sys.executable, str(venv), cwd=default_project)
    uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        str(venv),
        "-r",
        "pyproject.toml",
        "--group",
        "dev",
        cwd=default_project,
    )

    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=default_project,
        env={**os.environ, "TEST_DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert " passed" in result.stdout
