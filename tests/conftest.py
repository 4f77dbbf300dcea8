import os
import socket
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
    """A virtual environment with a rendered project's locked dependencies, once per project."""
    cache: dict[Path, Path] = {}

    def install(project: Path) -> Path:
        if project not in cache:
            venv = tmp_path_factory.mktemp("venv")
            install_locked(project, venv)
            cache[project] = venv
        return cache[project]

    return install
