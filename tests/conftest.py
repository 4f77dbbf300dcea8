import fcntl
import hashlib
import os
import shutil
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pytest_cookies.plugin import Cookies

from testkit.locks import install_locked
from testkit.template import answers_key, defaults

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def baked(cookies_session: Cookies) -> Callable[..., Path]:
    """Bake a combination once per session: `baked(framework="fastapi")` -> project directory."""
    cache: dict[str, Path] = {}

    def bake_once(**answers: str) -> Path:
        answers = {**defaults(), **answers}
        key = answers_key(answers)
        if key not in cache:
            result = cookies_session.bake(extra_context=answers)
            if result.exception is not None:
                raise result.exception
            cache[key] = result.project_path
        return cache[key]

    return bake_once


@pytest.fixture(scope="session")
def default_project(baked: Callable[..., Path]) -> Path:
    return baked()


@pytest.fixture
def project(default_project: Path, tmp_path: Path) -> Path:
    """A private copy of the default bake: make targets write .venv and may reformat files."""
    copy = tmp_path / default_project.name
    shutil.copytree(default_project, copy)
    return copy


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The real PostgreSQL server; its absence is a failure, never a skip."""
    parts = urlsplit(POSTGRES_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 5432), timeout=3).close()
    except OSError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at TEST_DATABASE_URL={POSTGRES_URL!r} ({exc}); "
            "start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start",
            pytrace=False,
        )
    return POSTGRES_URL


@pytest.fixture(scope="session")
def project_venv(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """A virtual environment with a rendered project's locked dependencies, once per lock.

    The venv holds only the lock's packages (no project is installed into it), so every project
    and copy with the same lock shares one, across xdist's workers too: the first to need it
    installs it under the run's shared temporary directory while the others wait.
    """
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "locked-venvs"
    shared.mkdir(exist_ok=True)

    def install(project: Path) -> Path:
        lock = hashlib.sha256((project / "requirements-dev.lock").read_bytes()).hexdigest()[:16]
        venv, done = shared / lock, shared / f"{lock}.installed"
        # fcntl: the workers are processes of one machine, and the standard library has it.
        with (shared / f"{lock}.lock").open("w") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            if not done.exists():
                if venv.exists():  # a worker that failed half-way
                    shutil.rmtree(venv)
                install_locked(project, venv)
                done.touch()
        return venv

    return install


@pytest.fixture(scope="session")
def installed_copy(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., tuple[Path, Path]]:
    """`installed_copy(**answers)`: a private copy of that bake, and its locked venv. Servers
    started from the copy write their byte code there, not into the shared bake."""

    def copy_and_install(**answers: str) -> tuple[Path, Path]:
        baked_project = baked(**answers)
        project = tmp_path_factory.mktemp("installed") / baked_project.name
        shutil.copytree(baked_project, project)
        return project, project_venv(project)

    return copy_and_install


# The matrix's size and time (tests/test_matrix.py), summed from every worker's reports.
MATRIX_MODULE = "tests/test_matrix.py::"
matrix_totals: Counter[str] = Counter()
matrix_seen: dict[str, int] = {}
MATRIX_SIZES = ("supported", "files", "python_sets", "manifest_sets")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.nodeid.startswith(MATRIX_MODULE):
        return
    matrix_totals["seconds"] += report.duration
    if report.when == "call":
        for name, value in report.user_properties:
            if name == "matrix_refused":
                matrix_totals["refused"] += value
            else:
                matrix_seen[name] = value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not matrix_totals:
        return
    size = {name: matrix_seen.get(f"matrix_{name}", "?") for name in MATRIX_SIZES}
    terminalreporter.write_line(
        f"matrix: {size['supported']} supported combinations ({size['files']} distinct files,"
        f" {size['python_sets']} distinct Python file sets, {size['manifest_sets']} distinct"
        f" manifest sets), {matrix_totals['refused']} unsupported refused,"
        f" {matrix_totals['seconds']:.1f} s of test time"
    )
