"""Install each framework's rendered project strictly from its lock and run its own tests."""

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.locks import install_locked
from tests.template import choice_options

pytestmark = pytest.mark.generated

Installed = Callable[[str], tuple[Path, Path]]


@pytest.fixture(scope="module")
def installed(baked: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """`installed(framework)` -> (project, its venv's python), installed once per module."""
    pythons: dict[str, Path] = {}

    def install(framework: str) -> tuple[Path, Path]:
        project = baked(framework=framework)
        if framework not in pythons:
            pythons[framework] = install_locked(project, tmp_path_factory.mktemp("venv"))
        return project, pythons[framework]

    return install


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_project_suite_passes_against_real_postgres(
    framework: str, installed: Installed, postgres_url: str
) -> None:
    project, python = installed(framework)

    result = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=project,
        env={**os.environ, "TEST_DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert " passed" in result.stdout


def test_django_production_settings_pass_the_deployment_checklist(installed: Installed) -> None:
    project, python = installed("django")
    production = {
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "orders.example.com",
        "DATABASE_URL": "postgresql://app@db.example.com:5432/app",
    }

    result = subprocess.run(
        [str(python), "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=project,
        env={**os.environ, **production},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
