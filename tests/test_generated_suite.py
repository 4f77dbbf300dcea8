"""Install each dependency set's rendered project (framework, database, worker, websockets,
inference)
strictly from its lock and run its own tests: against the real PostgreSQL server, RabbitMQ and
Redis; MongoDB's need MONGODB_URL, which this machine cannot offer, so they run what needs no
server and say why they skip the rest."""

import contextlib
import os
import re
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.brokers import rabbitmq_url, running_tansu
from testkit.services import REDIS_URL
from testkit.template import supported_combinations

pytestmark = pytest.mark.generated

Installed = Callable[..., tuple[Path, Path]]
# One project per dependency set: the other answers change no Python code that tests can reach.
VARIANT_OPTIONS = ("framework", "database", "worker", "websockets", "inference")
VARIANTS = list(
    dict.fromkeys(tuple(c[option] for option in VARIANT_OPTIONS) for c in supported_combinations())
)


@pytest.fixture(scope="module")
def installed(baked: Callable[..., Path], project_venv: Callable[[Path], Path]) -> Installed:
    """`installed(framework, database, ...)` -> (project, its lock's venv's python)."""

    def install(framework: str, database: str = "postgresql", **answers: str) -> tuple[Path, Path]:
        project = baked(framework=framework, database=database, **answers)
        return project, project_venv(project) / "bin" / "python"

    return install


def run_suite(python: Path, project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """As `make test` runs it: coverage measured, and below the project's floor a failure."""
    return subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra", "--cov"],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(VARIANT_OPTIONS, VARIANTS)
def test_project_suite_passes(
    framework: str,
    database: str,
    worker: str,
    websockets: str,
    inference: str,
    installed: Installed,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    project, python = installed(
        framework, database, worker=worker, websockets=websockets, inference=inference
    )
    env = {}
    if database == "postgresql":
        env["TEST_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    if websockets == "yes":
        env["REDIS_URL"] = REDIS_URL

    with contextlib.ExitStack() as stack:
        # The worker's tests run against a real broker: RabbitMQ here, a Kafka-protocol one.
        if worker == "rabbitmq":
            env["BROKER_URL"] = rabbitmq_url()
        elif worker == "kafka":
            tansu = stack.enter_context(running_tansu(tmp_path / "tansu.log"))
            env["BROKER_URL"] = tansu.bootstrap
        result = run_suite(python, project, **env)

    output = result.stdout[-5000:] + result.stderr[-5000:]
    assert result.returncode == 0, output
    assert " passed" in result.stdout
    assert re.search(r"Required test coverage of \d+(\.\d+)?% reached", result.stdout), output
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    if database == "mongodb" and "MONGODB_URL" not in os.environ:
        # No MongoDB server on these machines: what needs one says so, everything else ran.
        assert skipped, output
        assert all("needs a MongoDB server: set MONGODB_URL" in line for line in skipped), output
    else:
        assert skipped == [], output


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


@pytest.mark.parametrize(VARIANT_OPTIONS, VARIANTS)
def test_project_type_checks_strictly(
    framework: str,
    database: str,
    worker: str,
    websockets: str,
    inference: str,
    installed: Installed,
) -> None:
    """mypy --strict on the package and gunicorn.conf.py, as `make lint` runs it."""
    project, python = installed(
        framework, database, worker=worker, websockets=websockets, inference=inference
    )

    result = subprocess.run(
        [str(python), "-m", "mypy"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_project_coverage_floor_fails_a_run_below_it(installed: Installed) -> None:
    project, python = installed("fastapi", "none")

    result = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--cov",
            "--cov-fail-under=100",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode != 0
    assert "Required test coverage of 100% not reached" in result.stdout, result.stdout[-3000:]
